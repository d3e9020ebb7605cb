# Who started, stopped, tagged or terminated a box: CloudTrail's
# management events, kept log_retention_days in an encrypted bucket
# (cloudtrail = false if the organisation's trail covers this account).
# docs/operator.md "Audit" has the queries.

resource "aws_cloudtrail" "workstation" {
  #checkov:skip=CKV2_AWS_10:the trail is read with CloudTrail's event history and Athena (docs/operator.md); CloudWatch delivery would double the cost
  #checkov:skip=CKV_AWS_252:nobody subscribes to per-file delivery notices
  count                         = var.cloudtrail ? 1 : 0
  name                          = var.name
  s3_bucket_name                = aws_s3_bucket.trail[0].id
  kms_key_id                    = aws_kms_key.workstation.arn
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_log_file_validation    = true

  event_selector {
    read_write_type           = "WriteOnly"
    include_management_events = true
  }

  depends_on = [aws_s3_bucket_policy.trail]
}

resource "aws_s3_bucket" "trail" {
  #checkov:skip=CKV_AWS_144:the trail's files are integrity-checked (log file validation); a replica adds no audit value
  #checkov:skip=CKV2_AWS_62:nothing consumes events of the trail bucket
  #checkov:skip=CKV_AWS_18:the trail is the record of access; logging access to it would go to another bucket this module does not own
  count         = var.cloudtrail ? 1 : 0
  bucket_prefix = "${var.name}-trail-"
}

resource "aws_s3_bucket_public_access_block" "trail" {
  count                   = var.cloudtrail ? 1 : 0
  bucket                  = aws_s3_bucket.trail[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "trail" {
  count  = var.cloudtrail ? 1 : 0
  bucket = aws_s3_bucket.trail[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "trail" {
  count  = var.cloudtrail ? 1 : 0
  bucket = aws_s3_bucket.trail[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.workstation.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "trail" {
  count  = var.cloudtrail ? 1 : 0
  bucket = aws_s3_bucket.trail[0].id
  rule {
    id     = "expire-trail"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# CloudTrail's documented bucket policy: it checks the ACL, then writes
# under AWSLogs/<account>/ for this trail only.
resource "aws_s3_bucket_policy" "trail" {
  count  = var.cloudtrail ? 1 : 0
  bucket = aws_s3_bucket.trail[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "TrailChecksAcl"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "s3:GetBucketAcl"
        Resource  = aws_s3_bucket.trail[0].arn
        Condition = { StringEquals = { "aws:SourceArn" = "arn:${local.partition}:cloudtrail:${var.region}:${local.account}:trail/${var.name}" } }
      },
      {
        Sid       = "TrailWrites"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.trail[0].arn}/AWSLogs/${local.account}/*"
        Condition = { StringEquals = { "s3:x-amz-acl" = "bucket-owner-full-control", "aws:SourceArn" = "arn:${local.partition}:cloudtrail:${var.region}:${local.account}:trail/${var.name}" } }
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.trail[0].arn, "${aws_s3_bucket.trail[0].arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}
