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
