# ---- queues: a box's services use its owner's queues only ----
#
# A box's sqs store gets real SQS queues, made by `workstation up` with the
# engineer's (or the preview run's) credentials (iam.tf MakeOwnQueues,
# preview.tf MakeThisPullRequestsQueues): `ws_<owner>_<box>_<queue>` and a
# dead-letter queue each, tagged workstation:owner and workstation:name,
# encrypted with SSE-SQS, a dead-letter queue taking messages from its own
# queue only (RedriveAllowPolicy byQueue; a queue is no one's dead-letter
# queue: denyAll), so no other queue can redrive into it
# (provisioner/src/provider/queues.rs). `destroy`
# deletes them, and `reap` before it ends an expired preview (reaper.tf).
#
# Services on the box send and receive with the box's role. As for secrets
# (secrets.tf), only a role of the owner's own carries the owner tag, so
# this policy is on the owners' roles: `${aws:PrincipalTag/...}` is the
# role's owner, and the queue must be tagged as that owner's
# (aws:ResourceTag is a condition key of every queue action: Service
# Authorization Reference, "Actions, resources, and condition keys for
# Amazon SQS"; "Attribute-based access control for Amazon SQS"). A box of
# the shared role (no owner tag) reaches no queue. One role serves all of
# an owner's boxes, so it is an owner's queues a box reaches, not only its
# own box's; previews share the preview owner's.

data "aws_iam_policy_document" "box_queues" {
  statement {
    sid = "UseOwnersQueues"
    actions = [
      "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:PurgeQueue",
    ]
    resources = [local.box_queues]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
  }
}

resource "aws_iam_role_policy" "box_owner_queues" {
  for_each = var.owners
  name     = "${var.name}-box-queues"
  role     = aws_iam_role.box_owner[each.key].id
  policy   = data.aws_iam_policy_document.box_queues.json
}
