variable "region" {
  description = "AWS region of the boxes (the manifest's box.region)."
  type        = string
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "workstation"
}

variable "manifest_path" {
  description = "The company's workstation.toml: the security group opens its services' ports."
  type        = string
}

variable "vpc_id" {
  description = "An existing VPC for the boxes; null creates one (vpc_cidr, availability_zones)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Existing subnets for the boxes (with vpc_id)."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "CIDR of the VPC created when vpc_id is null."
  type        = string
  default     = "10.60.0.0/16"
}

variable "availability_zones" {
  description = "One subnet per zone when the VPC is created here."
  type        = list(string)
  default     = []
}

variable "allowed_cidrs" {
  description = "Networks that may reach the boxes' SSH and service ports (office, VPN). Never 0.0.0.0/0."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && !contains(var.allowed_cidrs, "0.0.0.0/0")
    error_message = "allowed_cidrs must list the office/VPN networks; 0.0.0.0/0 would expose every box."
  }
}

variable "owner_principal_tag" {
  description = "The principal tag (IAM user tag or SSO session tag) holding an engineer's workstation owner name."
  type        = string
  default     = "workstation-owner"
}

variable "engineer_role_names" {
  description = "IAM roles engineers use (e.g. their SSO permission set roles); the engineers' policy is attached to each."
  type        = list(string)
  default     = []
}

variable "publisher_role_names" {
  description = "IAM roles that run `workstation image publish` (CI, platform team)."
  type        = list(string)
  default     = []
}

variable "reaper_zip" {
  description = "The reaper Lambda package: `nix build .#reaper-lambda-arm64` (a zip whose `bootstrap` is workstation-reaper, static, arm64)."
  type        = string
}

variable "reaper_schedule" {
  description = "When the reaper runs (EventBridge Scheduler expression)."
  type        = string
  default     = "rate(15 minutes)"
}

variable "reaper_timezone" {
  description = "Time zone of reaper_schedule and of the manifest's stop schedules."
  type        = string
  default     = "UTC"
}

variable "log_retention_days" {
  description = "Retention of the reaper's logs and the VPC flow logs."
  type        = number
  default     = 365
}

variable "trusted_image_owners" {
  description = "AWS accounts (or \"amazon\") besides this one whose AMIs engineers may launch; the manifest's box.image_owners must be among them."
  type        = list(string)
  default     = []
}

variable "preview_owner" {
  description = "The owner name preview boxes run under (`workstation preview`): CI's role carries it as its owner principal tag, so it reaches only those boxes."
  type        = string
  default     = "preview"
}

variable "github_repository" {
  description = "\"org/repo\" whose GitHub Actions may run previews (an OIDC role for .github/workflows/preview.yml); null: no preview role."
  type        = string
  default     = null
}

variable "preview_domain" {
  description = "The manifest hostnames' domain (e.g. dev.example.com): a private Route 53 zone for it in the boxes' VPC holds the previews' names (api.pr-12.dev.example.com); null: none."
  type        = string
  default     = null

  # Route 53's condition keys see names lower case and without the final
  # dot: a domain written otherwise would match no record.
  validation {
    condition     = var.preview_domain == null || can(regex("^[a-z0-9-]+(\\.[a-z0-9-]+)+$", var.preview_domain))
    error_message = "preview_domain must be lower case, without a trailing dot (e.g. dev.example.com)."
  }
}

variable "github_oidc_provider_arn" {
  description = "The account's existing GitHub Actions OIDC provider (token.actions.githubusercontent.com), if it has one; null creates it (with github_repository)."
  type        = string
  default     = null
}

variable "github_environment" {
  description = "The GitHub environment preview jobs run in (Settings > Environments): give it required reviewers (with \"Prevent self-review\") and the default branch as its only deployment branch, so that a pull request's code reaches a box only after someone else approved it. Only its jobs may assume the preview CI role."
  type        = string
  default     = "preview"
}

variable "preview_session_tag" {
  description = "The session tag naming a preview run's pull request: `workstation preview up|down --role` (WORKSTATION_PREVIEW_ROLE) sets it when it assumes the preview role; the preview policy reaches only boxes and records of that number. Another name than the default must also be the workflow's WORKSTATION_PREVIEW_SESSION_TAG."
  type        = string
  default     = "workstation-preview"
}

variable "preview_instance_types" {
  description = "Instance types a preview may launch: the manifest's box.instance_type must be one of them."
  type        = list(string)
  default     = ["t3.medium", "t3.large", "t3a.medium", "t3a.large", "m7i.large", "m7g.large"]

  validation {
    condition     = length(var.preview_instance_types) > 0
    error_message = "preview_instance_types must name at least one instance type."
  }
}

variable "preview_max_disk_gib" {
  description = "The largest volume a preview may launch (GiB): the manifest's box.disk_gib of a pull request is the pull request's to choose, and this bounds what one preview can cost."
  type        = number
  default     = 100
}

variable "preview_seed_prefix" {
  description = "Key prefix in the seeds bucket that previews may read (seeds made for previews); everything else in the bucket is engineers' only."
  type        = string
  default     = "previews/"
}
