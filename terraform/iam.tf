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
  instances  = "arn:${local.partition}:ec2:${var.region}:${local.account}:instance/*"
  volumes    = "arn:${local.partition}:ec2:${var.region}:${local.account}:volume/*"
  # An engineer's own key pairs: `workstation.<owner>.<fingerprint>`
  # (provider/aws/launch.rs key_pair_name); owner names cannot contain '.'.
  own_key_pairs = "arn:${local.partition}:ec2:${var.region}:${local.account}:key-pair/workstation.${local.me}.*"
  # Tags the box writes about itself (provisioner/src/provider/mod.rs tags).
  box_tags = ["workstation:host-key", "workstation:last-active", "workstation:stopped-by"]
}

# ---- engineers: their own boxes only ----

data "aws_iam_policy_document" "engineer" {
  statement {
    sid = "Read"
    # Describe* actions have no resource-level permissions.
    actions   = ["ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:DescribeKeyPairs"]
    resources = ["*"]
  }

  statement {
    sid       = "LaunchOwnBoxes"
    actions   = ["ec2:RunInstances"]
    resources = [local.instances, local.volumes]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = [local.me]
    }
  }

  statement {
    sid     = "LaunchFromOurNetworkAndImages"
    actions = ["ec2:RunInstances"]
    resources = concat(
      [for s in local.subnet_ids : "arn:${local.partition}:ec2:${var.region}:${local.account}:subnet/${s}"],
      [
        aws_security_group.boxes.arn,
        "arn:${local.partition}:ec2:${var.region}:${local.account}:network-interface/*",
        local.own_key_pairs,
      ],
    )
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
    actions   = ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances", "ec2:CreateTags"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [local.me]
    }
    # Nobody re-labels a box as someone else's, and only the box itself
    # records activity: a forged last-active would keep it up (the reaper
    # also ignores one in the future).
    condition {
      test     = "ForAllValues:StringNotEquals"
      variable = "aws:TagKeys"
      values   = [local.owner_tag, "workstation:last-active"]
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

  statement {
    sid       = "GiveBoxesTheirRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.box.arn]
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

resource "aws_iam_role_policy_attachment" "engineer" {
  for_each   = toset(var.engineer_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.engineer.arn
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
  statement {
    sid       = "TagAndStopItself"
    actions   = ["ec2:CreateTags", "ec2:StopInstances"]
    resources = [local.instances]
    # The instance the role's credentials were issued to, and no other.
    condition {
      test     = "StringEquals"
      variable = "aws:ARN"
      values   = ["$${ec2:SourceInstanceARN}"]
    }
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

# ---- image publishing: snapshots and AMIs ----

data "aws_iam_policy_document" "publisher" {
  statement {
    sid       = "Read"
    actions   = ["ec2:DescribeImages", "ec2:DescribeSnapshots"]
    resources = ["*"]
  }

  statement {
    sid       = "UploadSnapshots"
    actions   = ["ebs:StartSnapshot", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot"]
    resources = ["arn:${local.partition}:ec2:${var.region}::snapshot/*"]
  }

  statement {
    sid     = "RegisterAndTagImages"
    actions = ["ec2:RegisterImage", "ec2:CreateTags"]
    resources = [
      "arn:${local.partition}:ec2:${var.region}::image/*",
      "arn:${local.partition}:ec2:${var.region}::snapshot/*",
    ]
  }
}

resource "aws_iam_policy" "publisher" {
  name        = "${var.name}-publisher"
  description = "workstation image publish: upload snapshots, register and tag AMIs"
  policy      = data.aws_iam_policy_document.publisher.json
}

resource "aws_iam_role_policy_attachment" "publisher" {
  for_each   = toset(var.publisher_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.publisher.arn
}
