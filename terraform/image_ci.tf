# The image pipeline's way into AWS (.github/workflows/image.yml): a push
# to the default branch builds the image and publishes it from a job in the
# GitHub environment var.image_environment, which alone may assume this
# role through GitHub's OIDC provider. A pull request's build runs without
# this environment and so without credentials. The role carries the
# publisher policy (snapshots and AMIs tagged with their inputs) and may
# write the deployed manifest (`workstation manifest publish`).

locals {
  image_ci = var.github_repository != null
}

data "aws_iam_policy_document" "image_ci_assume" {
  count = local.image_ci ? 1 : 0
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
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.image_environment}"]
    }
  }
}

resource "aws_iam_role" "image_ci" {
  count                = local.image_ci ? 1 : 0
  name                 = "${var.name}-image-ci"
  assume_role_policy   = data.aws_iam_policy_document.image_ci_assume[0].json
  max_session_duration = 3600
}

resource "aws_iam_role_policy_attachment" "image_ci" {
  count      = local.image_ci ? 1 : 0
  role       = aws_iam_role.image_ci[0].name
  policy_arn = aws_iam_policy.publisher.arn
}

resource "aws_iam_role_policy_attachment" "image_ci_manifest" {
  count      = local.image_ci ? 1 : 0
  role       = aws_iam_role.image_ci[0].name
  policy_arn = aws_iam_policy.manifest_publisher.arn
}
