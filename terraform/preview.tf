# Preview boxes (`workstation preview`, docs/preview.md): the roles CI's
# workflow assumes (GitHub OIDC, then one pull request's session), and an
# optional private zone for the previews' hostnames.

locals {
  previews     = var.github_repository != null
  preview_zone = var.preview_domain != null
  # The pull request a preview session is for: its session tag.
  my_pr            = "$${aws:PrincipalTag/${var.preview_session_tag}}"
  preview_role_arn = "arn:${local.partition}:iam::${local.account}:role/${var.name}-preview"
  # An account has one provider per URL: use the one it has, if any.
  github_oidc = var.github_oidc_provider_arn != null ? var.github_oidc_provider_arn : one(aws_iam_openid_connect_provider.github[*].arn)
}

resource "aws_iam_openid_connect_provider" "github" {
  count          = local.previews && var.github_oidc_provider_arn == null ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

# Two roles, so that a run is one pull request's and no other's:
# - `preview-ci`, assumed through GitHub's OIDC provider only by a job of
#   this repository running in the GitHub environment
#   var.github_environment (which requires a reviewer's approval, and holds
#   the SSH key seed as its secret). It may do nothing but assume the next
#   role, naming its pull request in the session tag var.preview_session_tag.
# - `preview`, whose policy (below) reaches only boxes, seeds and records of
#   the pull request in its session tag.
# Token claims: GitHub, "About security hardening with OpenID Connect"
# (subject `repo:ORG/REPO:environment:NAME` for a job with an environment).
data "aws_iam_policy_document" "preview_ci_assume" {
  count = local.previews ? 1 : 0
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_oidc]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    # The approved environment's jobs only: not `pull_request` (any branch's
    # workflow file, before anyone approved), nor another environment.
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "preview_ci" {
  count                = local.previews ? 1 : 0
  name                 = "${var.name}-preview-ci"
  assume_role_policy   = data.aws_iam_policy_document.preview_ci_assume[0].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "preview_ci" {
  count = local.previews ? 1 : 0
  statement {
    sid       = "BecomeOnePullRequest"
    actions   = ["sts:AssumeRole", "sts:TagSession"]
    resources = [local.preview_role_arn]
  }

  # A session tag is a claim the policy trusts: only the pull request's
  # number, and no wildcard that a StringLike rule would read as a pattern.
  statement {
    sid       = "OnlyThePullRequestTag"
    effect    = "Deny"
    actions   = ["sts:TagSession"]
    resources = ["*"]
    condition {
      test     = "ForAnyValue:StringNotEquals"
      variable = "aws:TagKeys"
      values   = [var.preview_session_tag]
    }
  }

  statement {
    sid       = "NoPatternInTheTag"
    effect    = "Deny"
    actions   = ["sts:TagSession"]
    resources = ["*"]
    condition {
      test     = "StringLike"
      variable = "aws:RequestTag/${var.preview_session_tag}"
      values   = ["*$${*}*", "*$${?}*", "*.*", "*/*"]
    }
  }
}

resource "aws_iam_role_policy" "preview_ci" {
  count  = local.previews ? 1 : 0
  name   = "${var.name}-preview-ci"
  role   = aws_iam_role.preview_ci[0].id
  policy = data.aws_iam_policy_document.preview_ci[0].json
}

data "aws_iam_policy_document" "preview_assume" {
  count = local.previews ? 1 : 0
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.preview_ci[0].arn]
    }
    # Every session names its pull request.
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${var.preview_session_tag}"
      values   = ["false"]
    }
  }
}

resource "aws_iam_role" "preview" {
  count                = local.previews ? 1 : 0
  name                 = "${var.name}-preview"
  assume_role_policy   = data.aws_iam_policy_document.preview_assume[0].json
  max_session_duration = 3600
  # The owner the previews' boxes carry: the role tag is the session's
  # principal tag (the CI role cannot set another: it may pass only the
  # pull request's tag).
  tags = { (var.owner_principal_tag) = var.preview_owner }
}

# What a preview run may do: its own pull request's box, seeds under the
# preview prefix, instance types from a list. Not an engineer's policy:
# no colleague's box, no production seed.
data "aws_iam_policy_document" "preview" {
  statement {
    sid = "Read"
    actions = [
      "ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:DescribeKeyPairs", "ec2:DescribeSnapshots",
      "ec2:DescribeVolumes", "ec2:DescribeReplaceRootVolumeTasks", "ec2:DescribeSubnets",
    ]
    resources = ["*"]
  }

  # The provider's data volume and upgrade calls, on this pull request's
  # box and volumes only (a preview's volume carries its number, and goes
  # with its instance).
  statement {
    sid       = "DataOfThisPullRequestsBox"
    actions   = ["ec2:AttachVolume", "ec2:DeleteVolume", "ec2:CreateReplaceRootVolumeTask"]
    resources = [local.instances, local.volumes]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/workstation:preview"
      values   = [local.my_pr]
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

  statement {
    sid       = "LaunchThisPullRequestsBox"
    actions   = ["ec2:RunInstances"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/workstation:preview"
      values   = [local.my_pr]
    }
    # IAM has no count of instances: the list (and the volume size below)
    # bound the cost of one, and `preview up --max` (the workflow's
    # WORKSTATION_PREVIEW_MAX) the count.
    condition {
      test     = "StringEquals"
      variable = "ec2:InstanceType"
      values   = var.preview_instance_types
    }
  }

  statement {
    sid       = "LaunchVolumes"
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
      values   = [var.preview_max_disk_gib]
    }
  }

  statement {
    sid       = "LaunchFromOurNetworkAndKeys"
    actions   = ["ec2:RunInstances"]
    resources = concat(local.subnets, [aws_security_group.boxes.arn, local.own_key_pairs])
  }

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

  # A pull request's code must not make a box that laptops would take for
  # a team's environment (`workstation env`).
  statement {
    sid       = "NoTeamBoxes"
    effect    = "Deny"
    actions   = ["ec2:RunInstances", "ec2:CreateTags"]
    resources = [local.instances]
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.team_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "ManageThisPullRequestsBox"
    actions   = ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/workstation:preview"
      values   = [local.my_pr]
    }
  }

  # With connect = "ssm", CI reaches its box through Session Manager: only
  # this pull request's box, only with the SSH document (as engineers).
  statement {
    sid       = "SshOverSessionManagerToThisPullRequestsBox"
    actions   = ["ssm:StartSession"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ssm:resourceTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "StringEquals"
      variable = "ssm:resourceTag/workstation:preview"
      values   = [local.my_pr]
    }
    condition {
      test     = "BoolIfExists"
      variable = "ssm:SessionDocumentAccessCheck"
      values   = ["true"]
    }
  }

  statement {
    sid       = "OnlyTheSshDocument"
    actions   = ["ssm:StartSession"]
    resources = ["arn:${local.partition}:ssm:${var.region}:*:document/AWS-StartSSHSession"]
  }

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

  # What `preview up` records (its commit, expiry, bring-up), on its own
  # box only: never another preview's expiry or the host key CI pins from.
  statement {
    sid       = "TagThisPullRequestsBox"
    actions   = ["ec2:CreateTags"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/workstation:preview"
      values   = [local.my_pr]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["workstation:ref", "workstation:expires", "workstation:bring-up", "workstation:manifest-hash", "workstation:usage"]
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

  # The shared box role, or the preview owner's (secrets.tf: previews get
  # the preview owner's secrets).
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

  # This pull request's box's queues (sqs stores): made with both tags,
  # changed and deleted when both say so (by tag: iam.tf says why).
  statement {
    sid       = "ListQueues"
    actions   = ["sqs:ListQueues"]
    resources = ["*"]
  }

  statement {
    sid       = "MakeThisPullRequestsQueues"
    actions   = ["sqs:CreateQueue", "sqs:TagQueue"]
    resources = [local.box_queues]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/workstation:preview"
      values   = [local.my_pr]
    }
  }

  # Never re-tag a queue of another owner or pull request (iam.tf says why).
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

  statement {
    sid       = "NotOtherPullRequestsQueuesTags"
    effect    = "Deny"
    actions   = ["sqs:TagQueue", "sqs:UntagQueue"]
    resources = [local.box_queues]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/workstation:preview"
      values   = ["false"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "aws:ResourceTag/workstation:preview"
      values   = [local.my_pr]
    }
  }

  statement {
    sid       = "FindQueues"
    actions   = ["sqs:GetQueueUrl", "sqs:ListQueueTags"]
    resources = [local.box_queues]
  }

  statement {
    sid       = "ChangeThisPullRequestsQueues"
    actions   = ["sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:DeleteQueue"]
    resources = [local.box_queues]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/workstation:preview"
      values   = [local.my_pr]
    }
  }

  # Seeds made for previews (scrubbed, small), not production's.
  statement {
    sid       = "ReadPreviewSeeds"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.seeds.arn}/${var.preview_seed_prefix}*"]
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

resource "aws_iam_role_policy" "preview" {
  count  = local.previews ? 1 : 0
  name   = "${var.name}-preview"
  role   = aws_iam_role.preview[0].id
  policy = data.aws_iam_policy_document.preview.json
}

resource "aws_route53_zone" "preview" {
  count   = local.preview_zone ? 1 : 0
  name    = var.preview_domain
  comment = "workstation preview hostnames"
  vpc {
    vpc_id = local.vpc_id
  }
}

# Records of this session's preview only: names with its `pr-N` label
# (N from the session tag), A or AAAA
# (preview/dns.rs). Condition keys: Route 53 Developer Guide, "Using IAM
# policy conditions for fine-grained access control" (names are normalised
# lower case, without the trailing dot).
data "aws_iam_policy_document" "preview_dns" {
  count = local.preview_zone ? 1 : 0
  statement {
    sid       = "PreviewRecords"
    actions   = ["route53:ChangeResourceRecordSets"]
    resources = ["arn:${local.partition}:route53:::hostedzone/${aws_route53_zone.preview[0].zone_id}"]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
      values   = ["*.pr-${local.my_pr}.${var.preview_domain}"]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "route53:ChangeResourceRecordSetsRecordTypes"
      values   = ["A", "AAAA"]
    }
  }

  # `preview down` reads a preview's records to delete them exactly.
  statement {
    sid       = "ReadRecords"
    actions   = ["route53:ListResourceRecordSets"]
    resources = ["arn:${local.partition}:route53:::hostedzone/${aws_route53_zone.preview[0].zone_id}"]
  }
}

resource "aws_iam_role_policy" "preview_dns" {
  count  = local.previews && local.preview_zone ? 1 : 0
  name   = "${var.name}-preview-dns"
  role   = aws_iam_role.preview[0].id
  policy = data.aws_iam_policy_document.preview_dns[0].json
}
