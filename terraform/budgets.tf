# What boxes cost, per owner: the workstation:owner tag activated for cost
# allocation (activate_owner_cost_tag, in the payer account; it appears in
# Cost Explorer and Budgets about a day after activation, and only for
# costs incurred after it), and a monthly budget
# per owner in budget_owners that mails budget_emails.

resource "aws_ce_cost_allocation_tag" "owner" {
  count   = var.activate_owner_cost_tag ? 1 : 0
  tag_key = "workstation:owner"
  status  = "Active"
}

resource "aws_budgets_budget" "owner" {
  for_each     = var.budget_monthly_usd != null ? toset(var.budget_owners) : toset([])
  name         = "${var.name}-${each.value}"
  budget_type  = "COST"
  limit_amount = tostring(var.budget_monthly_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  cost_filter {
    name   = "TagKeyValue"
    values = [format("user:workstation:owner$%s", each.value)]
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 80
    threshold_type             = "PERCENTAGE"
    notification_type          = "ACTUAL"
    subscriber_email_addresses = var.budget_emails
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 100
    threshold_type             = "PERCENTAGE"
    notification_type          = "FORECASTED"
    subscriber_email_addresses = var.budget_emails
  }

  depends_on = [aws_ce_cost_allocation_tag.owner]

  lifecycle {
    precondition {
      condition     = length(var.budget_emails) > 0
      error_message = "budget_emails must name at least one address to tell when a budget is crossed."
    }
  }
}
