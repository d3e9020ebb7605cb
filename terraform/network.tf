# Where boxes live and how traffic reaches them and leaves them.
#
# Boxes sit in private subnets and never get a public address. What they
# call is listed in local.box_services; each has a VPC endpoint here, so the
# AWS calls a box makes (publishing its host key, stopping itself, Session
# Manager, secrets) stay inside the VPC whatever box_internet says. tests/
# tests/network.rs derives the list from the code and fails when a service
# the box calls has no endpoint.
#
# The way in is `connect`: "vpn" opens SSH and the service ports to
# allowed_cidrs (the engineers' networks, reached over your VPN or Transit
# Gateway: transit_gateway_id / vpn_gateway_id); "ssm" opens nothing and
# engineers reach sshd through Session Manager (docs/operator.md).

locals {
  create_vpc = var.vpc_id == null
  vpc_id     = local.create_vpc ? aws_vpc.boxes[0].id : var.vpc_id
  subnet_ids = local.create_vpc ? aws_subnet.boxes[*].id : var.subnet_ids
  nat        = local.create_vpc && var.box_internet == "nat"
  vpc_cidr   = local.create_vpc ? var.vpc_cidr : data.aws_vpc.existing[0].cidr_block

  # AWS APIs a box calls: ec2 (boxside/: host key, activity, idle stop),
  # ssm + ssmmessages + ec2messages (the Session Manager agent), ssm and
  # secretsmanager (service secrets), sts (the SDK's credential checks),
  # sqs (services' queues, queues.tf). s3 is a gateway endpoint (seeds are
  # fetched from presigned URLs).
  box_interface_services = ["ec2", "sts", "ssm", "ssmmessages", "ec2messages", "secretsmanager", "sqs"]
}

data "aws_vpc" "existing" {
  count = local.create_vpc ? 0 : 1
  id    = var.vpc_id
}

resource "aws_vpc" "boxes" {
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_hostnames = true
  enable_dns_support   = true
  tags                 = { Name = var.name }

  lifecycle {
    precondition {
      condition     = length(var.availability_zones) > 0
      error_message = "availability_zones must name at least one zone (e.g. [\"eu-west-1a\", \"eu-west-1b\"]) when vpc_id is not set."
    }
  }
}

resource "aws_subnet" "boxes" {
  count             = local.create_vpc ? length(var.availability_zones) : 0
  vpc_id            = aws_vpc.boxes[0].id
  availability_zone = var.availability_zones[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index)
  # Boxes get no public address: engineers come in over the VPN or
  # Session Manager, and go out through the NAT gateway.
  map_public_ip_on_launch = false
  tags                    = { Name = "${var.name}-${var.availability_zones[count.index]}" }
}

# The default security group of a new VPC allows all traffic between its
# members; nothing uses it, so it allows nothing.
resource "aws_default_security_group" "boxes" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.boxes[0].id
}

resource "aws_route_table" "boxes" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.boxes[0].id
  tags   = { Name = "${var.name}-boxes" }
}

resource "aws_route_table_association" "boxes" {
  count          = local.create_vpc ? length(var.availability_zones) : 0
  subnet_id      = aws_subnet.boxes[count.index].id
  route_table_id = aws_route_table.boxes[0].id
}

# ---- the way out: to the internet through one NAT gateway (box_internet) ----

resource "aws_internet_gateway" "boxes" {
  count  = local.nat ? 1 : 0
  vpc_id = aws_vpc.boxes[0].id
  tags   = { Name = var.name }
}

# The NAT gateway's own subnet: only it lives there.
resource "aws_subnet" "nat" {
  count                   = local.nat ? 1 : 0
  vpc_id                  = aws_vpc.boxes[0].id
  availability_zone       = var.availability_zones[0]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, 255)
  map_public_ip_on_launch = false
  tags                    = { Name = "${var.name}-nat" }
}

resource "aws_route_table" "nat" {
  count  = local.nat ? 1 : 0
  vpc_id = aws_vpc.boxes[0].id
  tags   = { Name = "${var.name}-nat" }
}

resource "aws_route" "nat_to_internet" {
  count                  = local.nat ? 1 : 0
  route_table_id         = aws_route_table.nat[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.boxes[0].id
}

resource "aws_route_table_association" "nat" {
  count          = local.nat ? 1 : 0
  subnet_id      = aws_subnet.nat[0].id
  route_table_id = aws_route_table.nat[0].id
}

resource "aws_eip" "nat" {
  #checkov:skip=CKV2_AWS_19:the address belongs to the NAT gateway below, not to an instance
  count  = local.nat ? 1 : 0
  domain = "vpc"
  tags   = { Name = "${var.name}-nat" }
}

resource "aws_nat_gateway" "boxes" {
  count         = local.nat ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.nat[0].id
  tags          = { Name = var.name }
  depends_on    = [aws_internet_gateway.boxes]
}

resource "aws_route" "boxes_to_internet" {
  count                  = local.nat ? 1 : 0
  route_table_id         = aws_route_table.boxes[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.boxes[0].id
}

# ---- the way in from the engineers' networks (connect = "vpn") ----

resource "aws_ec2_transit_gateway_vpc_attachment" "boxes" {
  count              = local.create_vpc && var.transit_gateway_id != null ? 1 : 0
  transit_gateway_id = var.transit_gateway_id
  vpc_id             = aws_vpc.boxes[0].id
  subnet_ids         = aws_subnet.boxes[*].id
  tags               = { Name = var.name }
}

resource "aws_route" "engineers_via_transit_gateway" {
  for_each               = local.create_vpc && var.transit_gateway_id != null ? toset(var.allowed_cidrs) : toset([])
  route_table_id         = aws_route_table.boxes[0].id
  destination_cidr_block = each.value
  transit_gateway_id     = var.transit_gateway_id
  depends_on             = [aws_ec2_transit_gateway_vpc_attachment.boxes]
}

# A site-to-site VPN's virtual private gateway, attached to this VPC,
# announces the office networks itself.
resource "aws_vpn_gateway_attachment" "boxes" {
  count          = local.create_vpc && var.vpn_gateway_id != null ? 1 : 0
  vpc_id         = aws_vpc.boxes[0].id
  vpn_gateway_id = var.vpn_gateway_id
}

resource "aws_vpn_gateway_route_propagation" "boxes" {
  count          = local.create_vpc && var.vpn_gateway_id != null ? 1 : 0
  vpn_gateway_id = var.vpn_gateway_id
  route_table_id = aws_route_table.boxes[0].id
  depends_on     = [aws_vpn_gateway_attachment.boxes]
}

# ---- AWS APIs from inside the VPC ----

resource "aws_vpc_endpoint" "box_apis" {
  for_each            = local.create_vpc ? toset(local.box_interface_services) : toset([])
  vpc_id              = aws_vpc.boxes[0].id
  service_name        = "com.amazonaws.${var.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.boxes[*].id
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  tags                = { Name = "${var.name}-${each.value}" }
}

resource "aws_vpc_endpoint" "s3" {
  count             = local.create_vpc ? 1 : 0
  vpc_id            = aws_vpc.boxes[0].id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.boxes[0].id]
  tags              = { Name = "${var.name}-s3" }
}

resource "aws_security_group" "endpoints" {
  count       = local.create_vpc ? 1 : 0
  name        = "${var.name}-endpoints"
  description = "workstation: the VPC's AWS API endpoints, HTTPS from boxes"
  vpc_id      = aws_vpc.boxes[0].id

  ingress {
    description     = "HTTPS from boxes"
    from_port       = 443
    to_port         = 443
    protocol        = "tcp"
    security_groups = [aws_security_group.boxes.id]
  }

  # The webhook endpoint lists the boxes through the EC2 endpoint (webhooks.tf).
  dynamic "ingress" {
    for_each = var.webhooks ? [1] : []
    content {
      description     = "HTTPS from the webhook endpoint"
      from_port       = 443
      to_port         = 443
      protocol        = "tcp"
      security_groups = [aws_security_group.webhooks[0].id]
    }
  }

  egress {
    description = "answers only: an endpoint opens no connection of its own"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = [var.vpc_cidr]
  }
}

# ---- the boxes' own security group ----

resource "aws_security_group" "boxes" {
  #checkov:skip=CKV2_AWS_5:attached by `workstation create` (box.security_groups), not by terraform
  name        = "${var.name}-boxes"
  description = "workstation boxes: SSH and service ports from the engineers' networks (connect = vpn), nothing in with connect = ssm"
  vpc_id      = local.vpc_id

  dynamic "ingress" {
    for_each = var.connect == "vpn" ? toset(concat([22], var.service_ports)) : toset([])
    content {
      description = ingress.value == 22 ? "SSH (host keys pinned by workstation)" : "service port ${ingress.value} (service_ports)"
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = var.allowed_cidrs
    }
  }

  # Callbacks from the webhook endpoint (webhooks.tf), on its port only.
  dynamic "ingress" {
    for_each = var.webhooks ? [1] : []
    content {
      description     = "webhook callbacks from the endpoint"
      from_port       = var.webhooks_port
      to_port         = var.webhooks_port
      protocol        = "tcp"
      security_groups = [aws_security_group.webhooks[0].id]
    }
  }

  # The VPC's endpoints (and, with box_internet = "nat", the internet):
  # HTTPS, plus git over SSH and plain HTTP for package mirrors.
  dynamic "egress" {
    for_each = toset(var.box_internet == "nat" ? var.box_egress_ports : [443])
    content {
      description = "TCP ${egress.value} out"
      from_port   = egress.value
      to_port     = egress.value
      protocol    = "tcp"
      cidr_blocks = [var.box_internet == "nat" ? "0.0.0.0/0" : local.vpc_cidr]
    }
  }

  # The S3 gateway endpoint is not an address in the VPC: its prefix list.
  dynamic "egress" {
    for_each = local.create_vpc && var.box_internet != "nat" ? [1] : []
    content {
      description     = "HTTPS to S3 through the gateway endpoint (seeds)"
      from_port       = 443
      to_port         = 443
      protocol        = "tcp"
      prefix_list_ids = [aws_vpc_endpoint.s3[0].prefix_list_id]
    }
  }

  lifecycle {
    precondition {
      condition     = var.connect == "ssm" || length(var.allowed_cidrs) > 0
      error_message = "allowed_cidrs must list the engineers' networks (VPN, office) with connect = \"vpn\"; or set connect = \"ssm\" for Session Manager with no inbound port."
    }
  }
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
