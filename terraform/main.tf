# The account side of workstation: where boxes live, who may touch which
# box (ABAC on the workstation:owner tag), the seeds bucket and the reaper.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition

  # The deployed manifest: `workstation manifest publish` writes it, the
  # reaper reads it, `workstation doctor` compares it with yours.
  manifest_key    = "manifest/workstation.toml"
  manifest_object = "${aws_s3_bucket.seeds.arn}/${local.manifest_key}"
  manifest_url    = "s3://${aws_s3_bucket.seeds.bucket}/${local.manifest_key}"
}

# One customer-managed key for the seeds bucket, logs and the reaper's
# queue, rotated yearly.
resource "aws_kms_key" "workstation" {
  description             = "workstation: seeds bucket, logs, audit trail, reaper queue"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = { ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/${var.name}/*" } }
      },
      {
        Sid       = "CloudTrail"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = ["kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceArn" = "arn:${local.partition}:cloudtrail:${var.region}:${local.account}:trail/${var.name}" }
          StringLike   = { "kms:EncryptionContext:aws:cloudtrail:arn" = "arn:${local.partition}:cloudtrail:*:${local.account}:trail/*" }
        }
      },
    ]
  })
}
