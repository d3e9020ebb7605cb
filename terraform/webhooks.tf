# The webhook endpoint (docs/preview.md "Webhooks"): one URL per account
# that third parties (Stripe, GitHub, ...) call; each callback goes, byte
# for byte, to every running preview and team box at the path the
# deployed manifest's [webhooks] names. The reaper's build
# (`workstation-reaper`, var.reaper_zip) serves it: a function URL event
# has `rawPath`. It runs in the boxes' subnets and reaches them at their
# private addresses on var.webhooks_port only.
#
# Off unless var.webhooks is true: the URL is public by nature.

resource "aws_lambda_function" "webhooks" {
  #checkov:skip=CKV_AWS_272:the package is built by Nix from a pinned commit; code signing needs a signer profile this module does not run
  #checkov:skip=CKV_AWS_116:a callback is answered at once; the third party's own retry is the only one (no dead letters to replay)
  count            = var.webhooks ? 1 : 0
  function_name    = "${var.name}-webhooks"
  role             = aws_iam_role.webhooks[0].arn
  filename         = var.reaper_zip
  source_code_hash = filebase64sha256(var.reaper_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  memory_size      = 256
  # Every box at once, each bounded by 5 s (webhooks::TIMEOUT), plus the
  # manifest and the box list.
  timeout = 15
  # A burst of callbacks cannot become a storm on the boxes.
  reserved_concurrent_executions = var.webhooks_concurrency
  kms_key_arn                    = aws_kms_key.workstation.arn

  vpc_config {
    subnet_ids         = local.subnet_ids
    security_group_ids = [aws_security_group.webhooks[0].id]
  }

  environment {
    variables = {
      WORKSTATION_LOG          = "workstation=info"
      WORKSTATION_MANIFEST_URL = local.manifest_url
    }
  }

  tracing_config {
    mode = "Active"
  }

  # CreateFunction checks the network-interface permissions: the role's
  # policies first.
  depends_on = [aws_cloudwatch_log_group.webhooks, aws_iam_role_policy_attachment.webhooks_vpc, aws_iam_role_policy.webhooks]
}

# Third parties cannot sign with SigV4: the URL is open, and each box
# checks the callback's own signature (the body is passed on unchanged).
resource "aws_lambda_function_url" "webhooks" {
  #checkov:skip=CKV_AWS_258:third-party webhooks cannot sign AWS requests; each preview verifies the provider's signature over the unchanged body
  count              = var.webhooks ? 1 : 0
  function_name      = aws_lambda_function.webhooks[0].function_name
  authorization_type = "NONE"
}

# The URL's resource policy: anyone may call it (NONE), nothing else.
resource "aws_lambda_permission" "webhooks_url" {
  #checkov:skip=CKV_AWS_301:the webhook URL is public by design (third parties call it); it only forwards to previews, which verify each provider's signature
  count                  = var.webhooks ? 1 : 0
  statement_id           = "PublicWebhookUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.webhooks[0].function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_cloudwatch_log_group" "webhooks" {
  count             = var.webhooks ? 1 : 0
  name              = "/aws/lambda/${var.name}-webhooks"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.workstation.arn
}

# Its rules are resources of their own (none inline), as the boxes' group
# names this one in an inline rule (network.tf): inline both ways would be
# a cycle.
resource "aws_security_group" "webhooks" {
  #checkov:skip=CKV2_AWS_5:attached to the webhook function (vpc_config), which checkov does not follow
  count       = var.webhooks ? 1 : 0
  name        = "${var.name}-webhooks"
  description = "workstation webhook endpoint: to the boxes' webhook port, and HTTPS to the VPC's AWS endpoints"
  vpc_id      = local.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "webhooks_to_boxes" {
  count                        = var.webhooks ? 1 : 0
  security_group_id            = aws_security_group.webhooks[0].id
  description                  = "callbacks to the boxes"
  from_port                    = var.webhooks_port
  to_port                      = var.webhooks_port
  ip_protocol                  = "tcp"
  referenced_security_group_id = aws_security_group.boxes.id
}

resource "aws_vpc_security_group_egress_rule" "webhooks_to_endpoints" {
  count             = var.webhooks ? 1 : 0
  security_group_id = aws_security_group.webhooks[0].id
  description       = "HTTPS to the VPC's endpoints (EC2: the box list)"
  from_port         = 443
  to_port           = 443
  ip_protocol       = "tcp"
  cidr_ipv4         = local.vpc_cidr
}

resource "aws_vpc_security_group_egress_rule" "webhooks_to_s3" {
  count             = var.webhooks && local.create_vpc ? 1 : 0
  security_group_id = aws_security_group.webhooks[0].id
  description       = "HTTPS to S3 through the gateway endpoint (the deployed manifest)"
  from_port         = 443
  to_port           = 443
  ip_protocol       = "tcp"
  prefix_list_id    = aws_vpc_endpoint.s3[0].prefix_list_id
}

data "aws_iam_policy_document" "webhooks" {
  count = var.webhooks ? 1 : 0

  statement {
    sid       = "ListTheBoxes"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadTheDeployedManifest"
    actions   = ["s3:GetObject"]
    resources = [local.manifest_object]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.webhooks[0].arn}:*"]
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

resource "aws_iam_role" "webhooks" {
  count              = var.webhooks ? 1 : 0
  name               = "${var.name}-webhooks"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "webhooks" {
  count  = var.webhooks ? 1 : 0
  name   = "${var.name}-webhooks"
  role   = aws_iam_role.webhooks[0].id
  policy = data.aws_iam_policy_document.webhooks[0].json
}

# The network interfaces a function in a VPC needs: AWS's own policy for it.
resource "aws_iam_role_policy_attachment" "webhooks_vpc" {
  count      = var.webhooks ? 1 : 0
  role       = aws_iam_role.webhooks[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}
