# The platform team's break-glass: any owner's boxes, for offboarding
# (`workstation admin offboard OWNER`) and for the day a box must be stopped
# or removed for someone. Its actions are exactly what `admin offboard`
# calls (tests/tests/terraform.rs checks), on workstation resources only.

data "aws_iam_policy_document" "admin" {
  statement {
    sid       = "Read"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeKeyPairs", "ec2:DescribeVolumes"]
    resources = ["*"]
  }

  statement {
    sid       = "StopAndTerminateBoxes"
    actions   = ["ec2:StopInstances", "ec2:TerminateInstances"]
    resources = [local.instances]
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  # The mark that starts an owner's grace period, and nothing else.
  statement {
    sid       = "MarkOffboarded"
    actions   = ["ec2:CreateTags"]
    resources = [local.instances, local.volumes]
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["workstation:offboarded-at"]
    }
  }

  statement {
    sid       = "DeleteOwnersKeyPairs"
    actions   = ["ec2:DeleteKeyPair"]
    resources = ["arn:${local.partition}:ec2:${var.region}:${local.account}:key-pair/workstation.*"]
  }

  # A leaver's boxes' queues, deleted with the boxes (`destroy`): boxes'
  # queue names, and only a queue tagged with an owner.
  statement {
    sid       = "ListQueues"
    actions   = ["sqs:ListQueues"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadBoxQueuesTags"
    actions   = ["sqs:ListQueueTags"]
    resources = [local.box_queues]
  }

  statement {
    sid       = "DeleteOwnersQueues"
    actions   = ["sqs:DeleteQueue"]
    resources = [local.box_queues]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  # Kept volumes (a box's data, billed while nobody uses them) go only
  # after the grace, and only an owner's.
  statement {
    sid       = "DeleteOwnersVolumes"
    actions   = ["ec2:DeleteVolume"]
    resources = [local.volumes]
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
  }
}

resource "aws_iam_policy" "admin" {
  name        = "${var.name}-admin"
  description = "workstation break-glass: stop, terminate and clean up any owner's boxes, key pairs and volumes"
  policy      = data.aws_iam_policy_document.admin.json
}

# Roles (an Identity Center or SAML session: MFA is their identity
# provider's to enforce, and aws:MultiFactorAuthPresent is absent from role
# sessions) may assume it as they are; IAM users only with MFA.
locals {
  admin_roles = [for p in var.admin_principal_arns : p if can(regex(":role/", p))]
  admin_users = [for p in var.admin_principal_arns : p if !can(regex(":role/", p))]
}

data "aws_iam_policy_document" "admin_assume" {
  count = length(var.admin_principal_arns) > 0 ? 1 : 0

  dynamic "statement" {
    for_each = length(local.admin_roles) > 0 ? [local.admin_roles] : []
    content {
      sid     = "PlatformRoles"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "AWS"
        identifiers = statement.value
      }
    }
  }

  dynamic "statement" {
    for_each = length(local.admin_users) > 0 ? [local.admin_users] : []
    content {
      sid     = "PlatformUsersWithMfa"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "AWS"
        identifiers = statement.value
      }
      condition {
        test     = "Bool"
        variable = "aws:MultiFactorAuthPresent"
        values   = ["true"]
      }
    }
  }
}

resource "aws_iam_role" "admin" {
  count                = length(var.admin_principal_arns) > 0 ? 1 : 0
  name                 = "${var.name}-admin"
  assume_role_policy   = data.aws_iam_policy_document.admin_assume[0].json
  max_session_duration = 3600
}

resource "aws_iam_role_policy_attachment" "admin" {
  count      = length(var.admin_principal_arns) > 0 ? 1 : 0
  role       = aws_iam_role.admin[0].name
  policy_arn = aws_iam_policy.admin.arn
}
