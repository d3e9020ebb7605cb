# Who may do what. Every EC2 action the code calls is here and nothing
# else: tests/tests/terraform.rs derives each principal's actions from the
# code and compares.
#
# An engineer is identified by the principal tag var.owner_principal_tag
# (an IAM user tag, or an SSO session tag); a box belongs to the engineer
# whose name is in its workstation:owner tag.

locals {
  owner_tag  = "workstation:owner"
  me         = "$${aws:PrincipalTag/${var.owner_principal_tag}}"
  # An engineer's team (`workstation env`): a team box's workstation:team.
  my_team  = "$${aws:PrincipalTag/${var.team_principal_tag}}"
  team_tag = "workstation:team"
  instances  = "arn:${local.partition}:ec2:${var.region}:${local.account}:instance/*"
  volumes    = "arn:${local.partition}:ec2:${var.region}:${local.account}:volume/*"
  # An engineer's own key pairs: `workstation.<owner>.<fingerprint>`
  # (provider/aws/launch.rs key_pair_name); owner names cannot contain '.'.
  own_key_pairs = "arn:${local.partition}:ec2:${var.region}:${local.account}:key-pair/workstation.${local.me}.*"
  # Tags the box writes about itself (provisioner/src/provider/tags.rs).
  snapshots    = "arn:${local.partition}:ec2:${var.region}::snapshot/*"
  image_inputs = "workstation:image-inputs"
  box_tags = ["workstation:host-key", "workstation:last-active", "workstation:stopped-by"]
  # Tags an engineer's workstation writes on a running box, and no other:
  # an allow-list, so a new tag is a decision (never host-key, which CI and
  # laptops pin from, nor owner or last-active).
  engineer_tags = ["workstation:usage", "workstation:keep-until", "workstation:shareable", "workstation:bring-up", "workstation:manifest-hash", "workstation:ref", "workstation:expires", "workstation:image-id"]
  # Root volume replacement tasks (`workstation upgrade`) have ARNs of their own.
  root_tasks = "arn:${local.partition}:ec2:${var.region}:${local.account}:replace-root-volume-task/*"
  # Boxes' queues (sqs stores): `ws_<owner>_<box>_<queue>`
  # (provisioner/src/provider/queues.rs). Whose a queue is, is its
  # workstation:owner tag: the policies match tags, not names.
  queues     = "arn:${local.partition}:sqs:${var.region}:${local.account}:ws_"
  box_queues = "${local.queues}*"
  subnets       = [for s in local.subnet_ids : "arn:${local.partition}:ec2:${var.region}:${local.account}:subnet/${s}"]
}

# ---- engineers: their own boxes only ----

data "aws_iam_policy_document" "engineer" {
  statement {
    sid = "Read"
    # Describe* actions have no resource-level permissions.
    actions = [
      "ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:DescribeKeyPairs", "ec2:DescribeSnapshots",
      "ec2:DescribeVolumes", "ec2:DescribeReplaceRootVolumeTasks", "ec2:DescribeSubnets",
    ]
    resources = ["*"]
  }

  # List prices for `workstation cost`'s estimate and `status`'s cost line
  # (cost/prices.rs); the Price List API has no resources to scope.
  statement {
    sid       = "ListPrices"
    actions   = ["pricing:GetProducts"]
    resources = ["*"]
  }

  # Data volumes (provider/aws/volumes.rs): her kept volume reattached to
  # her box, and deleted when she purges it; never another's.
  statement {
    sid       = "AttachOwnDataToOwnBoxes"
    actions   = ["ec2:AttachVolume"]
    resources = [local.instances, local.volumes]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  statement {
    sid       = "DeleteOwnData"
    actions   = ["ec2:DeleteVolume"]
    resources = [local.volumes]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  # `workstation upgrade` (provider/aws/root.rs): a new root for her own
  # box, only from an image she could launch. A replacement from a
  # snapshot names a snapshot resource, which nothing here allows.
  statement {
    sid       = "ReplaceOwnBoxesRoots"
    actions   = ["ec2:CreateReplaceRootVolumeTask"]
    # The root volume replaced is hers too (tagged at launch).
    resources = [local.instances, local.volumes]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  statement {
    sid       = "ReplaceRootsFromTrustedImages"
    actions   = ["ec2:CreateReplaceRootVolumeTask"]
    resources = ["arn:${local.partition}:ec2:${var.region}::image/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:Owner"
      values   = concat([local.account], var.trusted_image_owners)
    }
  }

  statement {
    sid       = "MakeRootReplacementTasks"
    actions   = ["ec2:CreateReplaceRootVolumeTask"]
    resources = [local.root_tasks]
  }

  # Guardrails: an engineer's box is one of the platform's instance types,
  # with volumes no larger than engineer_max_disk_gib. How many boxes one
  # engineer has is not an IAM question: `create` refuses more than the
  # manifest's box.max_boxes_per_owner and `reap` reports who is over.
  statement {
    sid       = "LaunchOwnBoxes"
    actions   = ["ec2:RunInstances"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "StringEquals"
      variable = "ec2:InstanceType"
      values   = var.engineer_instance_types
    }
  }

  statement {
    sid       = "LaunchOwnVolumes"
    actions   = ["ec2:RunInstances"]
    resources = [local.volumes]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "NumericLessThanEquals"
      variable = "ec2:VolumeSize"
      values   = [var.engineer_max_disk_gib]
    }
  }

  statement {
    sid       = "LaunchFromOurNetworkAndKeys"
    actions   = ["ec2:RunInstances"]
    resources = concat(local.subnets, [aws_security_group.boxes.arn, local.own_key_pairs])
  }

  # The interface the launch creates, in our subnets: not an existing
  # interface of another network.
  statement {
    sid       = "LaunchInterfacesInOurSubnets"
    actions   = ["ec2:RunInstances"]
    resources = ["arn:${local.partition}:ec2:${var.region}:${local.account}:network-interface/*"]
    condition {
      test     = "ArnEquals"
      variable = "ec2:Subnet"
      values   = local.subnets
    }
  }

  # Images of this account, or of owners the platform trusts: a name is
  # not an identity (anyone can publish a public AMI under any name).
  statement {
    sid       = "LaunchTrustedImages"
    actions   = ["ec2:RunInstances"]
    resources = ["arn:${local.partition}:ec2:${var.region}::image/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:Owner"
      values   = concat([local.account], var.trusted_image_owners)
    }
  }

  statement {
    sid       = "TagAtLaunch"
    actions   = ["ec2:CreateTags"]
    resources = [local.instances, local.volumes, local.own_key_pairs]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances", "ImportKeyPair"]
    }
  }

  statement {
    sid       = "ManageOwnBoxes"
    actions   = ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  # Only the keys workstation writes: nobody re-labels a box as someone
  # else's, forges activity (a future last-active would keep it up) or
  # rewrites the host key others pin from.
  statement {
    sid       = "TagOwnBoxes"
    actions   = ["ec2:CreateTags"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = local.engineer_tags
    }
  }

  # `workstation share alice --start`: a colleague's stopped box, only if
  # she tagged it shareable (`share --allow-start`). Starting is all: the
  # box's data, keys and tags stay hers.
  statement {
    sid       = "StartSharedBoxes"
    actions   = ["ec2:StartInstances"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/workstation:shareable"
      values   = ["true"]
    }
    # Only workstation boxes: the account's other instances stay out.
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "ImportOwnKey"
    actions   = ["ec2:ImportKeyPair"]
    resources = [local.own_key_pairs]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  # The shared box role, or her own (secrets.tf): never another owner's,
  # whose boxes read that owner's secrets.
  statement {
    sid       = "GiveBoxesTheirRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.box.arn, "arn:${local.partition}:iam::${local.account}:role/${var.name}-box-${local.me}"]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadSeeds"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.seeds.arn}/*"]
  }

  # Team boxes (`workstation env`, docs/team.md): an engineer pushes her
  # own key for a minute to a box of her team, and the box's sshd admits it
  # (its AuthorizedKeysCommand reads the instance metadata). The team is
  # the box's tag, which only the team's members can set, at launch
  # (NoBoxesForOtherTeams below); the host key is pinned from the tag the
  # box itself wrote, as for her own boxes.
  statement {
    sid       = "TeamBoxesByInstanceConnect"
    actions   = ["ec2-instance-connect:SendSSHPublicKey"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.team_tag}"
      values   = [local.my_team]
    }
  }

  statement {
    sid       = "SshOverSessionManagerToTeamBoxes"
    actions   = ["ssm:StartSession"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ssm:resourceTag/${local.team_tag}"
      values   = [local.my_team]
    }
    condition {
      test     = "BoolIfExists"
      variable = "ssm:SessionDocumentAccessCheck"
      values   = ["true"]
    }
  }

  # A box tagged as another team's would be offered to that team's
  # engineers as theirs (`env find` goes by the tags): only a member makes
  # one, and someone with no team makes none.
  statement {
    sid       = "NoBoxesForOtherTeams"
    effect    = "Deny"
    actions   = ["ec2:RunInstances", "ec2:CreateTags"]
    resources = [local.instances]
    condition {
      test     = "StringNotEquals"
      variable = "aws:RequestTag/${local.team_tag}"
      values   = [local.my_team]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.team_tag}"
      values   = ["false"]
    }
  }

  # A team's boxes are its deployer's, owner `<team>-ci` (CI's identity,
  # provisioner/src/env/names.rs): a member's own box cannot pose as the
  # team's environment, which laptops find by these tags.
  statement {
    sid       = "TeamBoxesAreTheirCisOwn"
    effect    = "Deny"
    actions   = ["ec2:RunInstances", "ec2:CreateTags"]
    resources = [local.instances]
    condition {
      test     = "StringNotEquals"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = ["${local.my_team}-ci"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.team_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "NoTeamBoxesWithoutATeam"
    effect    = "Deny"
    actions   = ["ec2:RunInstances", "ec2:CreateTags"]
    resources = [local.instances]
    condition {
      test     = "Null"
      variable = "aws:PrincipalTag/${var.team_principal_tag}"
      values   = ["true"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.team_tag}"
      values   = ["false"]
    }
  }

  # SSH over Session Manager (connect = "ssm"): a session only to her own
  # boxes, only with the document that forwards to sshd (where the pinned
  # host key and her SSH key still decide), never a shell document: the
  # agent's shell runs as ssm-user, who may sudo.
  statement {
    sid       = "SshOverSessionManagerToOwnBoxes"
    actions   = ["ssm:StartSession"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ssm:resourceTag/${local.owner_tag}"
      values   = [local.me]
    }
    # AWS's pattern (Session Manager user guide, "Start a default shell
    # session by specifying the default session document"): a session
    # that names no document is checked against the default one, which
    # engineers may not use.
    condition {
      test     = "BoolIfExists"
      variable = "ssm:SessionDocumentAccessCheck"
      values   = ["true"]
    }
  }

  statement {
    sid       = "OnlyTheSshDocument"
    actions   = ["ssm:StartSession"]
    # AWS-owned documents have no account in their ARN: `*` matches it.
    resources = ["arn:${local.partition}:ssm:${var.region}:*:document/AWS-StartSSHSession"]
  }

  # Sessions she started (Session Manager tags each with its starter's
  # aws:userid): the plugin ends its session when ssh exits.
  statement {
    sid       = "EndOwnSessions"
    actions   = ["ssm:TerminateSession", "ssm:ResumeSession"]
    resources = ["arn:${local.partition}:ssm:${var.region}:${local.account}:session/*"]
    condition {
      test     = "StringLike"
      variable = "ssm:resourceTag/aws:ssmmessages:session-id"
      values   = ["$${aws:userid}"]
    }
  }

  # `workstation secrets`: her own values, under /workstation/<owner>/
  # (the path itself for listing, what is below it for the rest).
  statement {
    sid       = "OwnSecrets"
    actions   = ["ssm:PutParameter", "ssm:DeleteParameter", "ssm:GetParametersByPath"]
    resources = ["${local.parameters}/${local.me}", "${local.parameters}/${local.me}/*"]
  }

  # Even for a principal whose owner tag says "shared" (the CLI refuses
  # that owner name; a directory could still map it).
  statement {
    sid       = "NotTheSharedSecrets"
    effect    = "Deny"
    actions   = ["ssm:PutParameter", "ssm:DeleteParameter"]
    resources = ["${local.parameters}/shared", "${local.parameters}/shared/*"]
  }

  # The queues of your boxes' sqs stores: made with your owner tag (SQS
  # authorizes a create's tags as sqs:TagQueue too), read, changed and
  # deleted when their tag says they are yours. ListQueues takes only "*"
  # (Service Authorization Reference, "Actions ... for Amazon SQS"). By
  # tag, not name: IAM allows `ws_${...}_*`, but a variable with a '/'
  # in an SQS resource defeats the simulator the tests decide with. A
  # queue named as someone else's box's but tagged yours is refused by
  # `up` itself (provider/queues.rs checks the tags of what it finds).
  statement {
    sid       = "ListQueues"
    actions   = ["sqs:ListQueues"]
    resources = ["*"]
  }

  statement {
    sid       = "MakeOwnQueues"
    actions   = ["sqs:CreateQueue", "sqs:TagQueue"]
    resources = [local.box_queues]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  # A create's tags are authorized as TagQueue, which on its own would
  # let you re-tag someone else's queue as yours: never on a queue that
  # carries another owner's tag (a queue being made carries none yet).
  statement {
    sid       = "NotOthersQueuesTags"
    effect    = "Deny"
    actions   = ["sqs:TagQueue", "sqs:UntagQueue"]
    resources = [local.box_queues]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  # Whether a queue exists and whose it is: `up` and `destroy` look
  # before they use one (a queue that does not exist has no tag to match).
  statement {
    sid       = "FindQueues"
    actions   = ["sqs:GetQueueUrl", "sqs:ListQueueTags"]
    resources = [local.box_queues]
  }

  statement {
    sid       = "ChangeOwnQueues"
    actions   = ["sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:DeleteQueue"]
    resources = [local.box_queues]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  statement {
    sid       = "DecryptSeeds"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.workstation.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "engineer" {
  name        = "${var.name}-engineer"
  description = "workstation: run, start, stop, tag and terminate only your own boxes"
  policy      = data.aws_iam_policy_document.engineer.json
}

# ---- the box: tag and stop only itself ----
# It needs no S3 access: seeding hands the box presigned URLs signed with
# the engineer's credentials (provisioner/src/stack/seed/).

data "aws_iam_policy_document" "box_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# It reads its own tags from instance metadata (the launch turns
# InstanceMetadataTags on): no region-wide DescribeTags.
data "aws_iam_policy_document" "box" {
  #checkov:skip=CKV_AWS_111:ssmmessages and ec2messages actions take only Resource "*" (Service Authorization Reference); everything else here is the box's own instance
  #checkov:skip=CKV_AWS_356:ssmmessages and ec2messages actions take only Resource "*" (Service Authorization Reference)
  # The instance the role's credentials were issued to, and no other:
  # requests signed with instance credentials carry ec2:SourceInstanceARN
  # (Amazon EC2 User Guide, "Example policies to control access the Amazon
  # EC2 API": "Allow a specific instance to view resources in other AWS
  # services"; Service Authorization Reference, "Condition keys for Amazon
  # EC2"), and the instance acted on has ec2:InstanceID, usable as a policy
  # variable in a condition's value (IAM User Guide, "IAM policy elements:
  # Variables and tags"). `aws:ARN`, used before, is in none of AWS's lists
  # of condition keys (some report it works; nothing promises it, and no
  # simulator can check it).
  statement {
    sid       = "TagAndStopItself"
    actions   = ["ec2:CreateTags", "ec2:StopInstances"]
    resources = [local.instances]
    condition {
      test     = "ArnEquals"
      variable = "ec2:SourceInstanceARN"
      values   = ["arn:${local.partition}:ec2:${var.region}:${local.account}:instance/$${ec2:InstanceID}"]
    }
  }

  # The Session Manager agent (connect = "ssm"): registering itself, and
  # the control and data channels sessions run over. AmazonSSMManagedInstanceCore's
  # actions, less inventory, patching and parameters.
  statement {
    sid       = "SessionManagerRegistersItself"
    actions   = ["ssm:UpdateInstanceInformation"]
    resources = [local.instances]
  }

  statement {
    sid       = "SessionManagerChannels"
    actions   = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel", "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"]
    resources = ["*"]
  }

  statement {
    sid       = "OnlyItsOwnTags"
    effect    = "Deny"
    actions   = ["ec2:CreateTags"]
    resources = ["*"]
    condition {
      test     = "ForAnyValue:StringNotEquals"
      variable = "aws:TagKeys"
      values   = local.box_tags
    }
  }
}

resource "aws_iam_role" "box" {
  name               = "${var.name}-box"
  assume_role_policy = data.aws_iam_policy_document.box_assume.json
}

resource "aws_iam_role_policy" "box" {
  name   = "${var.name}-box"
  role   = aws_iam_role.box.id
  policy = data.aws_iam_policy_document.box.json
}

resource "aws_iam_instance_profile" "box" {
  name = "${var.name}-box"
  role = aws_iam_role.box.name
}
