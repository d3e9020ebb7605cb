# Who may publish: the image publisher (snapshots and AMIs, `workstation
# image publish`) and the manifest publisher (`workstation manifest
# publish`). Their actions, like every principal's in iam.tf, are derived
# from the code and compared by tests/tests/terraform.rs.

data "aws_iam_policy_document" "publisher" {
  statement {
    sid       = "Read"
    actions   = ["ec2:DescribeImages", "ec2:DescribeSnapshots"]
    resources = ["*"]
  }

  # Every snapshot it starts carries the image's inputs (provenance), and
  # it writes blocks only into such snapshots.
  statement {
    sid       = "StartTaggedSnapshots"
    actions   = ["ebs:StartSnapshot"]
    resources = [local.snapshots]
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.image_inputs}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "UploadIntoTaggedSnapshots"
    actions   = ["ebs:PutSnapshotBlock", "ebs:CompleteSnapshot"]
    resources = [local.snapshots]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.image_inputs}"
      values   = ["false"]
    }
  }

  # An image only from a snapshot the publisher made (tagged at its start:
  # nobody else can tag snapshots), so no one slips a disk of their own
  # under the image line's tag.
  statement {
    sid       = "RegisterImages"
    actions   = ["ec2:RegisterImage"]
    resources = ["arn:${local.partition}:ec2:${var.region}::image/*"]
  }

  statement {
    sid       = "RegisterFromPublishedSnapshots"
    actions   = ["ec2:RegisterImage"]
    resources = [local.snapshots]
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/${local.image_inputs}"
      values   = ["false"]
    }
  }

  # Tags only on images it registered: at registration (tag-on-create), or
  # again on an image that already carries the publisher's tags (a run
  # that died before tagging, on an API without tag-on-create). A foreign
  # image of the account cannot be made to look like one of the line.
  statement {
    sid       = "TagImagesAtRegistration"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${var.region}::image/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RegisterImage"]
    }
  }

  statement {
    sid       = "RetagPublishedImages"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${var.region}::image/*"]
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/${local.image_inputs}"
      values   = ["false"]
    }
  }
}

# `workstation manifest publish`: the deployed manifest the reaper reads.
data "aws_iam_policy_document" "manifest_publisher" {
  statement {
    sid       = "WriteTheDeployedManifest"
    actions   = ["s3:PutObject"]
    resources = [local.manifest_object]
  }

  statement {
    sid       = "EncryptIt"
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.workstation.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "publisher" {
  name        = "${var.name}-publisher"
  description = "workstation image publish: upload snapshots, register and tag AMIs"
  policy      = data.aws_iam_policy_document.publisher.json
}

resource "aws_iam_policy" "manifest_publisher" {
  name        = "${var.name}-manifest-publisher"
  description = "workstation manifest publish: write the deployed manifest"
  policy      = data.aws_iam_policy_document.manifest_publisher.json
}

resource "aws_iam_role_policy_attachment" "publisher" {
  for_each   = toset(var.publisher_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.publisher.arn
}

resource "aws_iam_role_policy_attachment" "manifest_publisher" {
  for_each   = toset(var.publisher_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.manifest_publisher.arn
}
