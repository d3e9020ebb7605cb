# The account side of workstation: where boxes live, who may touch which
# box (ABAC on the workstation:owner tag), the seeds bucket and the reaper.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  create_vpc = var.vpc_id == null

  # The manifest's service ports, read from workstation.toml (terraform has
  # no TOML decoder): every `ports = [...]` line.
  manifest      = file(var.manifest_path)
  service_ports = distinct(flatten([for m in regexall("(?m)^\\s*ports\\s*=\\s*\\[([0-9,\\s]*)\\]", local.manifest) : [for p in split(",", m[0]) : tonumber(trimspace(p)) if trimspace(p) != ""]]))

  vpc_id     = local.create_vpc ? aws_vpc.boxes[0].id : var.vpc_id
  subnet_ids = local.create_vpc ? aws_subnet.boxes[*].id : var.subnet_ids
}

resource "aws_vpc" "boxes" {
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_hostnames = true
  enable_dns_support   = true
  tags                 = { Name = var.name }
}

resource "aws_subnet" "boxes" {
  count             = local.create_vpc ? length(var.availability_zones) : 0
  vpc_id            = aws_vpc.boxes[0].id
  availability_zone = var.availability_zones[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index)
  # Boxes get no public address: engineers reach them over the VPN.
  map_public_ip_on_launch = false
  tags                    = { Name = "${var.name}-${var.availability_zones[count.index]}" }
}

# The default security group of a new VPC allows all traffic between its
# members; nothing uses it, so it allows nothing.
resource "aws_default_security_group" "boxes" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.boxes[0].id
}

resource "aws_flow_log" "boxes" {
  count                = local.create_vpc ? 1 : 0
  vpc_id               = aws_vpc.boxes[0].id
  traffic_type         = "REJECT"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow[0].arn
  iam_role_arn         = aws_iam_role.flow[0].arn
}

resource "aws_cloudwatch_log_group" "flow" {
  count             = local.create_vpc ? 1 : 0
  name              = "/${var.name}/vpc-flow"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.workstation.arn
}

resource "aws_iam_role" "flow" {
  count = local.create_vpc ? 1 : 0
  name  = "${var.name}-vpc-flow"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "vpc-flow-logs.amazonaws.com" } }]
  })
}

resource "aws_iam_role_policy" "flow" {
  count = local.create_vpc ? 1 : 0
  role  = aws_iam_role.flow[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = "${aws_cloudwatch_log_group.flow[0].arn}:*"
    }]
  })
}

# SSH and the manifest's service ports, only from the allowed networks.
resource "aws_security_group" "boxes" {
  #checkov:skip=CKV2_AWS_5:attached by `workstation create` (box.security_groups), not by terraform
  name        = "${var.name}-boxes"
  description = "workstation boxes: SSH and the manifest's service ports from the allowed networks"
  vpc_id      = local.vpc_id

  ingress {
    description = "SSH (host keys pinned by workstation)"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = var.allowed_cidrs
  }

  dynamic "ingress" {
    for_each = local.service_ports
    content {
      description = "service port ${ingress.value} from workstation.toml"
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = var.allowed_cidrs
    }
  }

  egress {
    description = "HTTPS: EC2 and S3 APIs, Nix caches, package registries"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# One customer-managed key for the seeds bucket, logs and the reaper's
# queue, rotated yearly.
resource "aws_kms_key" "workstation" {
  description             = "workstation: seeds bucket, logs, reaper queue"
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
    ]
  })
}
