# Preview boxes (`workstation preview`, docs/preview.md): the role CI's
# workflow assumes (GitHub OIDC), which is the owner var.preview_owner and
# so, under the engineers' policy, reaches only that owner's boxes; and an
# optional private zone for the previews' hostnames.

locals {
  previews     = var.github_repository != null
  preview_zone = var.preview_domain != null
  # An account has one provider per URL: use the one it has, if any.
  github_oidc = var.github_oidc_provider_arn != null ? var.github_oidc_provider_arn : one(aws_iam_openid_connect_provider.github[*].arn)
}

resource "aws_iam_openid_connect_provider" "github" {
  count          = local.previews && var.github_oidc_provider_arn == null ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_policy_document" "preview_assume" {
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
    # This repository's pull_request workflows only: not another branch's
    # or environment's workflow, which the role's reach would serve too.
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:pull_request"]
    }
  }
}

resource "aws_iam_role" "preview" {
  count              = local.previews ? 1 : 0
  name               = "${var.name}-preview"
  assume_role_policy = data.aws_iam_policy_document.preview_assume[0].json
  # What the engineers' policy keys every box on (local.me): this role is
  # the owner var.preview_owner, and no engineer.
  tags = { (var.owner_principal_tag) = var.preview_owner }
}

resource "aws_iam_role_policy_attachment" "preview" {
  count      = local.previews ? 1 : 0
  role       = aws_iam_role.preview[0].name
  policy_arn = aws_iam_policy.engineer.arn
}

resource "aws_route53_zone" "preview" {
  count   = local.preview_zone ? 1 : 0
  name    = var.preview_domain
  comment = "workstation preview hostnames"
  vpc {
    vpc_id = local.vpc_id
  }
}

# Records of previews only: names with a `pr-N` label, A or AAAA
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
      values   = ["*.pr-*.${var.preview_domain}"]
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
