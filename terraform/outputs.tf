# What `workstation` needs: put these into workstation.toml's [box].

output "subnet_ids" {
  description = "box.subnet: where boxes launch."
  value       = local.subnet_ids
}

output "security_group_id" {
  description = "box.security_groups: SSH and the service ports from allowed_cidrs."
  value       = aws_security_group.boxes.id
}

output "instance_profile" {
  description = "box.instance_profile: lets a box tag and stop only itself, and read /workstation/shared/* secrets; with `owners` set, use instance_profile_per_owner instead."
  value       = aws_iam_instance_profile.box.name
}

output "instance_profile_per_owner" {
  description = "box.instance_profile for the owners in `owners`: each box also reads its owner's /workstation/<owner>/* secrets ({owner} is filled in at launch)."
  value       = "${var.name}-box-{owner}"
}

output "seeds_bucket" {
  description = "Bucket for s3:// seeds in the manifest."
  value       = aws_s3_bucket.seeds.bucket
}

output "engineer_policy_arn" {
  description = "Attach to engineers' roles (done for engineer_role_names)."
  value       = aws_iam_policy.engineer.arn
}

output "publisher_policy_arn" {
  description = "Attach to whoever runs `workstation image publish` (with manifest_publisher_policy_arn for `workstation manifest publish`): done for publisher_role_names and the image CI role."
  value       = aws_iam_policy.publisher.arn
}

output "reaper_function" {
  description = "The scheduled reaper; invoke it with {\"manifest\": ..., \"dry_run\": true} to see its plan."
  value       = aws_lambda_function.reaper.function_name
}

output "preview_ci_role_arn" {
  description = "The role preview jobs assume through GitHub OIDC (repository variable WORKSTATION_PREVIEW_CI_ROLE; configure-aws-credentials role-to-assume); null without github_repository."
  value       = local.previews ? aws_iam_role.preview_ci[0].arn : null
}

output "preview_role_arn" {
  description = "The role a preview run becomes for one pull request (repository variable WORKSTATION_PREVIEW_ROLE: `preview up` assumes it with the pull request's session tag); null without github_repository."
  value       = local.previews ? aws_iam_role.preview[0].arn : null
}

output "preview_zone_id" {
  description = "`workstation preview up --zone-id` (WORKSTATION_PREVIEW_ZONE); null without preview_domain."
  value       = local.preview_zone ? aws_route53_zone.preview[0].zone_id : null
}

output "admin_policy_arn" {
  description = "The break-glass policy (`workstation admin offboard`); attached to the admin role when admin_principal_arns is set."
  value       = aws_iam_policy.admin.arn
}

output "admin_role_arn" {
  description = "The break-glass role; null without admin_principal_arns."
  value       = one(aws_iam_role.admin[*].arn)
}

output "image_ci_role_arn" {
  description = "The role .github/workflows/image.yml assumes to publish (repository variable WORKSTATION_IMAGE_ROLE); null without github_repository."
  value       = one(aws_iam_role.image_ci[*].arn)
}

output "manifest_url" {
  description = "Where `workstation manifest publish` writes the deployed manifest: the manifest's box.deployed_manifest; the reaper reads it."
  value       = local.manifest_url
}

output "permission_set_arn" {
  description = "The engineers' Identity Center permission set; null without identity_center_instance_arn."
  value       = one(aws_ssoadmin_permission_set.engineer[*].arn)
}

output "connect" {
  description = "How engineers (and the preview workflow's WORKSTATION_CONNECT) reach boxes: their settings' connect takes this value (`connect = \"ssm\"` in ~/.config/workstation/config.toml or WORKSTATION_CONNECT=ssm; \"vpn\" is the default)."
  value       = var.connect
}

output "trail_bucket" {
  description = "The audit trail's bucket (docs/operator.md, Audit); null with cloudtrail = false."
  value       = one(aws_s3_bucket.trail[*].bucket)
}

output "manifest_publisher_policy_arn" {
  description = "Lets `workstation manifest publish` write manifest_url."
  value       = aws_iam_policy.manifest_publisher.arn
}

output "reaper_policy_arn" {
  description = "For the cron/systemd fallback (examples/reap/): attach to the role of the host that runs `workstation reap`."
  value       = aws_iam_policy.reaper.arn
}

output "webhooks_url" {
  description = "The webhook endpoint (with webhooks = true): register https://.../NAME with each provider; `workstation webhooks --endpoint` (or WORKSTATION_WEBHOOKS_URL) lists it with its targets."
  value       = var.webhooks ? aws_lambda_function_url.webhooks[0].function_url : null
}
