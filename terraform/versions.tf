terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Pinned: IAM condition keys and scheduler arguments are checked
      # against this version; move it on purpose.
      version = "= 5.82.2"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "= 2.7.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "workstation:managed-by" = "terraform"
    }
  }
}

# IAM Identity Center is managed from the organisation's management (or
# delegated administrator) account, in Identity Center's home region:
# identity.tf's resources use this provider. Without
# identity_center_role_arn it is the same credentials as the default.
provider "aws" {
  alias  = "identity_center"
  region = coalesce(var.identity_center_region, var.region)

  dynamic "assume_role" {
    for_each = var.identity_center_role_arn != null ? [var.identity_center_role_arn] : []
    content {
      role_arn     = assume_role.value
      session_name = "workstation-terraform"
    }
  }

  default_tags {
    tags = {
      "workstation:managed-by" = "terraform"
    }
  }
}
