# The backstop: `workstation reap` on a schedule, as a Lambda built from our
# crate (`workstation-reaper`, lambda_runtime). EventBridge Scheduler passes
# where the deployed manifest is (`workstation manifest publish` writes it to
# the seeds bucket), so a manifest change needs no terraform apply.

resource "aws_lambda_function" "reaper" {
  #checkov:skip=CKV_AWS_117:the reaper calls only the EC2, SQS and S3 APIs; a VPC would need a NAT or endpoints and adds nothing
  #checkov:skip=CKV_AWS_272:the package is built by Nix from a pinned commit; code signing needs a signer profile this module does not run
  function_name    = "${var.name}-reaper"
  role             = aws_iam_role.reaper.arn
  filename         = var.reaper_zip
  source_code_hash = filebase64sha256(var.reaper_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  memory_size      = 256
  # Paging and stopping 10,000 boxes takes well under a minute.
  timeout                        = 300
  reserved_concurrent_executions = 1
  kms_key_arn                    = aws_kms_key.workstation.arn

  environment {
    variables = {
      WORKSTATION_LOG = "workstation=info"
    }
  }

  tracing_config {
    mode = "Active"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.reaper_dlq.arn
  }

  depends_on = [aws_cloudwatch_log_group.reaper]
}

resource "aws_cloudwatch_log_group" "reaper" {
  name              = "/aws/lambda/${var.name}-reaper"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.workstation.arn
}

resource "aws_sqs_queue" "reaper_dlq" {
  name                      = "${var.name}-reaper-dlq"
  kms_master_key_id         = aws_kms_key.workstation.arn
  message_retention_seconds = 1209600
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "reaper" {
  statement {
    sid       = "Read"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  statement {
    sid       = "StopAndLabelBoxes"
    actions   = ["ec2:StopInstances", "ec2:CreateTags"]
    resources = [local.instances]
    # Only workstation boxes: instances carrying an owner tag.
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  # Team boxes (`workstation env`) are started inside the manifest's
  # [team_idle] start windows (working hours): only boxes with a team tag.
  statement {
    sid       = "StartTeamBoxes"
    actions   = ["ec2:StartInstances"]
    resources = [local.instances]
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/${local.team_tag}"
      values   = ["false"]
    }
  }

  # Expired previews are terminated, not stopped: only boxes of the
  # preview owner that are previews.
  statement {
    sid       = "TerminateExpiredPreviews"
    actions   = ["ec2:TerminateInstances"]
    resources = [local.instances]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${local.owner_tag}"
      values   = [var.preview_owner]
    }
    condition {
      test     = "Null"
      variable = "ec2:ResourceTag/workstation:preview"
      values   = ["false"]
    }
  }

  # An expired preview's queues, deleted before the preview: only a queue
  # whose tags say it is a preview's.
  statement {
    sid       = "ListQueues"
    actions   = ["sqs:ListQueues"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadPreviewQueuesTags"
    actions   = ["sqs:ListQueueTags"]
    resources = [local.box_queues]
  }

  statement {
    sid       = "DeleteExpiredPreviewsQueues"
    actions   = ["sqs:DeleteQueue"]
    resources = [local.box_queues]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = [var.preview_owner]
    }
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/workstation:preview"
      values   = ["false"]
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
      # And the hours ledger a start of a team box writes (provider/usage.rs).
      values = ["workstation:stopped-by", "workstation:usage"]
    }
  }

  statement {
    sid       = "ReadTheDeployedManifest"
    actions   = ["s3:GetObject"]
    resources = [local.manifest_object]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.reaper.arn}:*"]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.reaper_dlq.arn]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  statement {
    sid       = "Encryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.workstation.arn]
  }
}

resource "aws_iam_role" "reaper" {
  name               = "${var.name}-reaper"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "reaper" {
  name   = "${var.name}-reaper"
  role   = aws_iam_role.reaper.id
  policy = data.aws_iam_policy_document.reaper.json
}

# ---- the schedule ----

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-reaper-schedule"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

resource "aws_iam_role_policy" "scheduler" {
  name = "${var.name}-reaper-schedule"
  role = aws_iam_role.scheduler.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "lambda:InvokeFunction", Resource = aws_lambda_function.reaper.arn }]
  })
}

resource "aws_scheduler_schedule" "reaper" {
  name                         = "${var.name}-reaper"
  schedule_expression          = var.reaper_schedule
  schedule_expression_timezone = var.reaper_timezone
  kms_key_arn                  = aws_kms_key.workstation.arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.reaper.arn
    role_arn = aws_iam_role.scheduler.arn
    # The deployed manifest's [idle] policy decides which boxes stop.
    input = jsonencode({ manifest_url = local.manifest_url, preview_owner = var.preview_owner })

    retry_policy {
      maximum_retry_attempts = 2
    }
  }
}

# The same permissions for the cron/systemd fallback (examples/reap/): a
# policy to attach to the role of the host that runs `workstation reap`.
resource "aws_iam_policy" "reaper" {
  name        = "${var.name}-reaper"
  description = "workstation reap from cron or a systemd timer (examples/reap/): stop idle boxes, terminate expired previews, read the deployed manifest"
  policy      = data.aws_iam_policy_document.reaper.json
}
