# ---- secrets: each box reads the shared ones and its owner's ----
#
# A service's `secrets` (workstation.toml) name Systems Manager parameters
# or Secrets Manager secrets; the box reads them itself when the program
# starts (provisioner/src/boxside/launch.rs), with its instance role.
#
# No condition key carries the tags of the instance a request comes from
# (Service Authorization Reference, "Condition keys for AWS Systems
# Manager" and "... for AWS Secrets Manager": only the resource's and the
# principal's), so "only its owner's" cannot be said of one shared role.
# Each owner gets a role of their own instead, tagged with the owner, and
# the one policy below names `${aws:PrincipalTag/...}` (a role's tags are
# its sessions' principal tags; IAM User Guide, "Controlling access for
# IAM principals"). Engineers may pass only their own role (iam.tf,
# GiveBoxesTheirRole), so a box claiming another owner in its tags still
# reads nothing of theirs. The shared role (`${var.name}-box`) has no
# owner tag and reads only /workstation/shared/*.
#
# SecureString parameters are encrypted with the account's AWS managed key
# for Systems Manager (aws/ssm), whose key policy lets principals of the
# account use it through Systems Manager: no kms grant here.

locals {
  parameters = "arn:${local.partition}:ssm:${var.region}:${local.account}:parameter/workstation"
  secrets    = "arn:${local.partition}:secretsmanager:${var.region}:${local.account}:secret:workstation"
}

data "aws_iam_policy_document" "box_secrets" {
  statement {
    sid       = "ReadSharedSecrets"
    actions   = ["ssm:GetParameter", "secretsmanager:GetSecretValue"]
    resources = ["${local.parameters}/shared/*", "${local.secrets}/shared/*"]
  }

  # Alone in its statement: a box role without the owner tag leaves the
  # variable unresolved, and only this statement then matches nothing.
  statement {
    sid       = "ReadOwnersSecrets"
    actions   = ["ssm:GetParameter", "secretsmanager:GetSecretValue"]
    resources = ["${local.parameters}/${local.me}/*", "${local.secrets}/${local.me}/*"]
  }
}

resource "aws_iam_role_policy" "box_secrets" {
  name   = "${var.name}-box-secrets"
  role   = aws_iam_role.box.id
  policy = data.aws_iam_policy_document.box_secrets.json
}

# One role and instance profile per owner: box.instance_profile =
# "${var.name}-box-{owner}" in the manifest picks the launching owner's.
resource "aws_iam_role" "box_owner" {
  for_each           = var.owners
  name               = "${var.name}-box-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.box_assume.json
  tags               = { (var.owner_principal_tag) = each.key }
}

resource "aws_iam_role_policy" "box_owner" {
  for_each = var.owners
  name     = "${var.name}-box"
  role     = aws_iam_role.box_owner[each.key].id
  policy   = data.aws_iam_policy_document.box.json
}

resource "aws_iam_role_policy" "box_owner_secrets" {
  for_each = var.owners
  name     = "${var.name}-box-secrets"
  role     = aws_iam_role.box_owner[each.key].id
  policy   = data.aws_iam_policy_document.box_secrets.json
}

resource "aws_iam_instance_profile" "box_owner" {
  for_each = var.owners
  name     = "${var.name}-box-${each.key}"
  role     = aws_iam_role.box_owner[each.key].name
}
