# `workstation cost` (docs/operator.md, "Costs"): Cost Explorer groups the
# bill by the owner tag (budgets.tf activates it, with
# activate_owner_cost_tag) and by the box's name tag, activated here under
# the same switch; the platform team reads the bill; everyone reads list
# prices (the engineer policy's ListPrices statement, iam.tf).
#
# Cost Explorer shows an activated tag on usage from its activation on,
# and lags usage by up to a day.
resource "aws_ce_cost_allocation_tag" "name" {
  count   = var.activate_owner_cost_tag ? 1 : 0
  tag_key = "workstation:name"
  status  = "Active"
}

# Cost Explorer has no resource-level permissions or tag conditions: this
# read is the whole account's bill, so it is the platform team's only
# (attached to the admin role), never an engineer's.
data "aws_iam_policy_document" "cost_reader" {
  statement {
    sid       = "ReadTheBill"
    actions   = ["ce:GetCostAndUsage"]
    resources = ["*"]
  }

  statement {
    sid       = "ListPrices"
    actions   = ["pricing:GetProducts"]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "cost_reader" {
  name        = "${var.name}-cost-reader"
  description = "workstation cost: the account's bill by owner and box, and EC2 list prices"
  policy      = data.aws_iam_policy_document.cost_reader.json
}

resource "aws_iam_role_policy_attachment" "admin_cost_reader" {
  count      = length(var.admin_principal_arns) > 0 ? 1 : 0
  role       = aws_iam_role.admin[0].name
  policy_arn = aws_iam_policy.cost_reader.arn
}

output "cost_reader_policy_arn" {
  description = "The bill's read for `workstation cost` (Cost Explorer); attached to the admin role when admin_principal_arns is set."
  value       = aws_iam_policy.cost_reader.arn
}
