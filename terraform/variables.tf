variable "region" {
  description = "AWS region of the boxes (the manifest's box.region)."
  type        = string
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "workstation"
}

variable "service_ports" {
  description = "TCP ports of the manifest's services that engineers' laptops reach (every `ports = [...]` in workstation.toml), opened to allowed_cidrs with connect = \"vpn\". A manifest change that adds a port needs this list and a re-apply; `workstation doctor` says when the deployed manifest and the local one differ."
  type        = list(number)
  default     = []

  validation {
    condition     = alltrue([for p in var.service_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "service_ports are TCP ports: whole numbers from 1 to 65535."
  }
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
  description = "The engineers' networks (office, VPN, Transit Gateway routes) that may reach SSH and service_ports with connect = \"vpn\". Never 0.0.0.0/0. Empty with connect = \"ssm\"."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.allowed_cidrs, "0.0.0.0/0") && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must be CIDR blocks of the office/VPN networks; 0.0.0.0/0 would expose every box."
  }
}

variable "connect" {
  description = "How engineers reach boxes: \"vpn\" (SSH and service ports open to allowed_cidrs, over your VPN or Transit Gateway) or \"ssm\" (no inbound port: SSH through Session Manager's AWS-StartSSHSession; engineers set connect = \"ssm\" in their workstation settings and install the Session Manager plugin)."
  type        = string
  default     = "vpn"

  validation {
    condition     = contains(["vpn", "ssm"], var.connect)
    error_message = "connect must be \"vpn\" or \"ssm\"."
  }
}

variable "box_internet" {
  description = "Boxes' way to the internet (git, package registries): \"nat\" (one NAT gateway, about $33/month plus $0.045/GB) or \"none\" (only the VPC endpoints for AWS APIs: nothing outside AWS is reachable). Only for a VPC created here."
  type        = string
  default     = "nat"

  validation {
    condition     = contains(["nat", "none"], var.box_internet)
    error_message = "box_internet must be \"nat\" or \"none\"."
  }
}

variable "box_egress_ports" {
  description = "TCP ports boxes may open to the internet with box_internet = \"nat\" (HTTPS, git over SSH, HTTP package mirrors)."
  type        = list(number)
  default     = [443, 22, 80]
}

variable "transit_gateway_id" {
  description = "Attach the created VPC to this Transit Gateway and route allowed_cidrs through it (the usual way a corporate VPN reaches a new VPC); null: none."
  type        = string
  default     = null
}

variable "vpn_gateway_id" {
  description = "A virtual private gateway (site-to-site VPN) whose routes propagate into the boxes' route table; null: none."
  type        = string
  default     = null
}

variable "owner_principal_tag" {
  description = "The principal tag (IAM user tag or SSO session tag) holding an engineer's workstation owner name."
  type        = string
  default     = "workstation-owner"
}

variable "team_principal_tag" {
  description = "The principal tag (IAM user tag or SSO session tag) holding an engineer's team: members may log in to their team's boxes (`workstation env`, EC2 Instance Connect), and only they may launch a box tagged workstation:team with it."
  type        = string
  default     = "team"
}

variable "owners" {
  description = "Owner names (engineers, and \"preview\" for previews) that get a box role and instance profile of their own, `<name>-box-<owner>`, whose boxes read that owner's secrets under /workstation/<owner>/ (secrets.tf)."
  type        = set(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.owners : can(regex("^[a-z][a-z0-9-]{0,31}$", o)) && o != "shared"])
    error_message = "Each owner is a workstation owner name: a lower-case letter, then letters, digits and '-', at most 32; not \"shared\" (the shared secrets' path)."
  }
}

variable "engineer_role_names" {
  description = "IAM roles of your own that engineers use, whose sessions carry owner_principal_tag (not AWSReservedSSO_* roles: use identity_center_instance_arn); the engineers' policy is attached to each."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.engineer_role_names : !startswith(r, "AWSReservedSSO_")])
    error_message = "IAM does not let policies be attached to AWSReservedSSO_* roles: set identity_center_instance_arn (a permission set is made) instead."
  }
}

variable "engineer_group_name" {
  description = "An IAM group of engineers' IAM users (each tagged owner_principal_tag = their owner name); the engineers' policy is attached to it. null: none."
  type        = string
  default     = null
}

variable "identity_center_instance_arn" {
  description = "IAM Identity Center instance (arn:aws:sso:::instance/ssoins-...): creates the engineers' permission set and maps the directory's user name to owner_principal_tag. null: no Identity Center."
  type        = string
  default     = null
}

variable "identity_center_role_arn" {
  description = "A role in the organisation's management (or delegated administrator) account that may administer Identity Center; terraform assumes it for identity.tf. null: the apply's own credentials already can (a standalone account, or applying from the management account)."
  type        = string
  default     = null
}

variable "identity_center_region" {
  description = "Identity Center's home region, if not region."
  type        = string
  default     = null
}

variable "identity_center_group_ids" {
  description = "Identity Center groups (their ids in the identity store) given the engineers' permission set in this account."
  type        = list(string)
  default     = []
}

variable "identity_center_owner_source" {
  description = "Where an engineer's owner name comes from in the identity store (attributes for access control): $${path:userName} by default; a custom attribute if user names are e-mail addresses."
  type        = string
  default     = "$${path:userName}"
}

variable "identity_center_manage_attributes" {
  description = "Whether this module owns the instance's attributes for access control (one list per instance): false if you map them elsewhere; add owner_principal_tag there."
  type        = bool
  default     = true
}

variable "identity_center_session_duration" {
  description = "How long an engineer's session lasts (ISO 8601)."
  type        = string
  default     = "PT8H"
}

variable "engineer_instance_types" {
  description = "Instance types engineers may launch (ec2:InstanceType); the manifest's box.instance_type must be one of them."
  type        = list(string)
  default     = ["t3.large", "t3.xlarge", "m7i.large", "m7i.xlarge", "m7i.2xlarge", "m7g.large", "m7g.xlarge", "m7g.2xlarge"]

  validation {
    condition     = length(var.engineer_instance_types) > 0
    error_message = "engineer_instance_types must name at least one instance type."
  }
}

variable "engineer_max_disk_gib" {
  description = "The largest volume an engineer's box may launch with (GiB, ec2:VolumeSize): at least the manifest's box.disk_gib."
  type        = number
  default     = 200
}

variable "activate_owner_cost_tag" {
  description = "Activate workstation:owner and workstation:name as cost-allocation tags (Cost Explorer, `workstation cost`, budgets per owner). Only the organisation's management (payer) account, or a standalone account, may: elsewhere activate it there (Billing > Cost allocation tags) and leave this false. The tag can be activated only once it appears in billing data (a day after the first tagged box)."
  type        = bool
  default     = false
}

variable "budget_monthly_usd" {
  description = "Monthly AWS Budgets limit per owner (on the workstation:owner cost-allocation tag), in USD; alerts at 80% actual and 100% forecast to budget_emails. null: no budgets."
  type        = number
  default     = null
}

variable "budget_owners" {
  description = "Owner names that get a budget of budget_monthly_usd each."
  type        = list(string)
  default     = []
}

variable "budget_emails" {
  description = "Who is told when a budget is crossed."
  type        = list(string)
  default     = []
}

variable "admin_principal_arns" {
  description = "Who may assume the break-glass admin role (`workstation admin offboard`, any owner's boxes): platform engineers' roles (their identity provider enforces MFA) or IAM users (only with MFA). Empty: no admin role (the policy still exists: attach admin_policy_arn yourself)."
  type        = list(string)
  default     = []
}

variable "cloudtrail" {
  description = "Create a CloudTrail trail of management events (who started, stopped, tagged or terminated a box). false if the organisation's trail already covers this account."
  type        = bool
  default     = true
}

variable "image_environment" {
  description = "The GitHub environment that publishes images (.github/workflows/image.yml on the default branch): only its jobs may assume the image CI role. Give it required reviewers if publishing should wait for one."
  type        = string
  default     = "image"
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

variable "webhooks" {
  description = "Create the webhook endpoint (terraform/webhooks.tf): a public Lambda function URL whose callbacks go to every running preview and team box. Output webhooks_url."
  type        = bool
  default     = false
}

variable "webhooks_port" {
  description = "The box port callbacks go to: the manifest's [webhooks] port (default 80, the front of services)."
  type        = number
  default     = 80
}

variable "webhooks_concurrency" {
  description = "Callbacks handled at once (the function's reserved concurrency): a burst waits (the third party retries) rather than flooding the boxes."
  type        = number
  default     = 10
}
