# How engineers get the engineers' policy, and their owner name with it.
#
# With IAM Identity Center (identity_center_instance_arn set; managed
# through the `aws.identity_center` provider: the management or delegated
# administrator account, identity_center_role_arn, in Identity Center's
# home region, identity_center_region): a permission
# set carrying the engineers' policy (a customer-managed policy reference:
# the policy must exist in every account the set is assigned to), and
# "attributes for access control" that turn the directory's user name into
# the session tag var.owner_principal_tag: ${aws:PrincipalTag/<tag>} in
# every policy here is then the engineer's user name. The AWSReservedSSO_*
# roles Identity Center creates cannot be given policies directly (IAM
# refuses changes to them); the permission set is how.
#
# Without Identity Center: engineer_role_names (roles of your own whose
# sessions carry the tag, e.g. from your IdP's SAML attribute
# https://aws.amazon.com/SAML/Attributes/PrincipalTag:workstation-owner)
# or IAM users tagged workstation-owner = <name> in engineer_group_name.
#
# The owner name is a Linux user name on the box: lower case letters,
# digits, '_' and '-', starting with a letter, at most 32 characters
# (images/workstation.nix checks it; `workstation init` proposes $USER only
# if it fits, and the directory's user name must map to it).

resource "aws_ssoadmin_permission_set" "engineer" {
  provider           = aws.identity_center
  count            = var.identity_center_instance_arn != null ? 1 : 0
  name             = "${var.name}-engineer"
  description      = "workstation: run, start, stop and SSH into only your own boxes"
  instance_arn     = var.identity_center_instance_arn
  session_duration = var.identity_center_session_duration
}

resource "aws_ssoadmin_customer_managed_policy_attachment" "engineer" {
  provider           = aws.identity_center
  count              = var.identity_center_instance_arn != null ? 1 : 0
  instance_arn       = var.identity_center_instance_arn
  permission_set_arn = aws_ssoadmin_permission_set.engineer[0].arn
  customer_managed_policy_reference {
    name = aws_iam_policy.engineer.name
    path = "/"
  }
}

# One mapping for the whole Identity Center instance: if your instance
# already maps attributes elsewhere, add this key there instead (the
# resource owns the instance's whole list).
resource "aws_ssoadmin_instance_access_control_attributes" "owner" {
  provider           = aws.identity_center
  count        = var.identity_center_instance_arn != null && var.identity_center_manage_attributes ? 1 : 0
  instance_arn = var.identity_center_instance_arn
  attribute {
    key = var.owner_principal_tag
    value {
      source = [var.identity_center_owner_source]
    }
  }
}

resource "aws_ssoadmin_account_assignment" "engineers" {
  provider           = aws.identity_center
  for_each           = var.identity_center_instance_arn != null ? toset(var.identity_center_group_ids) : toset([])
  instance_arn       = var.identity_center_instance_arn
  permission_set_arn = aws_ssoadmin_permission_set.engineer[0].arn
  principal_id       = each.value
  principal_type     = "GROUP"
  target_id          = local.account
  target_type        = "AWS_ACCOUNT"
  depends_on         = [aws_ssoadmin_customer_managed_policy_attachment.engineer]
}

# ---- without Identity Center ----

resource "aws_iam_role_policy_attachment" "engineer" {
  for_each   = toset(var.engineer_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.engineer.arn
}

resource "aws_iam_group_policy_attachment" "engineer" {
  count      = var.engineer_group_name != null ? 1 : 0
  group      = var.engineer_group_name
  policy_arn = aws_iam_policy.engineer.arn
}
