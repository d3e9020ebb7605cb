# Snapshots the data stores are seeded from (s3:// seeds in the manifest):
# private, encrypted with the workstation key, versioned so a bad upload
# can be rolled back.

resource "aws_s3_bucket" "seeds" {
  #checkov:skip=CKV2_AWS_62:nothing reacts to a seed upload; boxes load seeds when `create` or `seed` asks
  #checkov:skip=CKV_AWS_144:seeds are regenerated from their source, not a primary copy; versioning covers bad uploads
  bucket_prefix = "${var.name}-seeds-"
}

resource "aws_s3_bucket_public_access_block" "seeds" {
  bucket                  = aws_s3_bucket.seeds.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "seeds" {
  bucket = aws_s3_bucket.seeds.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "seeds" {
  bucket = aws_s3_bucket.seeds.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "seeds" {
  bucket = aws_s3_bucket.seeds.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.workstation.arn
    }
    bucket_key_enabled = true
  }
}

# Old versions of a snapshot go after 90 days; unfinished uploads after 7.
resource "aws_s3_bucket_lifecycle_configuration" "seeds" {
  bucket = aws_s3_bucket.seeds.id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_policy" "seeds" {
  bucket = aws_s3_bucket.seeds.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TLSOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.seeds.arn, "${aws_s3_bucket.seeds.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

# Who changed a seed, and when.
resource "aws_s3_bucket_logging" "seeds" {
  bucket        = aws_s3_bucket.seeds.id
  target_bucket = aws_s3_bucket.seeds_log.id
  target_prefix = "seeds/"
}

resource "aws_s3_bucket" "seeds_log" {
  #checkov:skip=CKV_AWS_18:this is the access-log bucket; logging it into itself would loop
  #checkov:skip=CKV_AWS_144:access logs are not replicated across regions; losing them loses no seed data
  #checkov:skip=CKV2_AWS_62:nothing consumes events of the log bucket
  #checkov:skip=CKV_AWS_145:S3 server access logs cannot be delivered to an SSE-KMS bucket; it uses SSE-S3
  bucket_prefix = "${var.name}-seeds-log-"
}

resource "aws_s3_bucket_public_access_block" "seeds_log" {
  bucket                  = aws_s3_bucket.seeds_log.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "seeds_log" {
  bucket = aws_s3_bucket.seeds_log.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "seeds_log" {
  bucket = aws_s3_bucket.seeds_log.id
  rule {
    # S3 server access logging cannot deliver to SSE-KMS buckets.
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "seeds_log" {
  bucket = aws_s3_bucket.seeds_log.id
  rule {
    id     = "expire-logs"
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
