# The module's outputs, re-exported so `terraform output -json` here feeds scripts/flat-outputs
# (which writes cfn-outputs/flat-outputs.json for the deployed-stack tests).

output "environment_suffix" {
  description = "The suffix every resource name ends with."
  value       = module.tickwatch.environment_suffix
}

output "aws_region" {
  description = "Region the stack is deployed in."
  value       = module.tickwatch.aws_region
}

output "queue_url" {
  description = "URL of the tick queue."
  value       = module.tickwatch.queue_url
}

output "queue_arn" {
  description = "ARN of the tick queue."
  value       = module.tickwatch.queue_arn
}

output "queue_name" {
  description = "Name of the tick queue."
  value       = module.tickwatch.queue_name
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue."
  value       = module.tickwatch.dead_letter_queue_url
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = module.tickwatch.dead_letter_queue_arn
}

output "alerts_table_name" {
  description = "Name of the alerts table."
  value       = module.tickwatch.alerts_table_name
}

output "alerts_table_arn" {
  description = "ARN of the alerts table."
  value       = module.tickwatch.alerts_table_arn
}

output "state_table_name" {
  description = "Name of the per-symbol state table."
  value       = module.tickwatch.state_table_name
}

output "state_table_arn" {
  description = "ARN of the per-symbol state table."
  value       = module.tickwatch.state_table_arn
}

output "rules_table_name" {
  description = "Name of the alert rules table."
  value       = module.tickwatch.rules_table_name
}

output "rules_table_arn" {
  description = "ARN of the alert rules table."
  value       = module.tickwatch.rules_table_arn
}

output "alerts_topic_arn" {
  description = "ARN of the alerts topic."
  value       = module.tickwatch.alerts_topic_arn
}

output "function_name" {
  description = "Name of the processor function."
  value       = module.tickwatch.function_name
}

output "function_arn" {
  description = "ARN of the processor function."
  value       = module.tickwatch.function_arn
}

output "function_role_arn" {
  description = "ARN of the processor's execution role."
  value       = module.tickwatch.function_role_arn
}

output "event_source_mapping_uuid" {
  description = "UUID of the queue -> function event source mapping."
  value       = module.tickwatch.event_source_mapping_uuid
}

output "kms_key_arn" {
  description = "ARN of the stack's KMS key."
  value       = module.tickwatch.kms_key_arn
}

output "kms_key_alias" {
  description = "Alias of the stack's KMS key."
  value       = module.tickwatch.kms_key_alias
}

output "log_group_name" {
  description = "CloudWatch log group of the processor."
  value       = module.tickwatch.log_group_name
}

output "alarm_names" {
  description = "Names of the three alarms."
  value       = module.tickwatch.alarm_names
}

output "dashboard_name" {
  description = "CloudWatch dashboard (null when turned off)."
  value       = module.tickwatch.dashboard_name
}

output "worker_role_arn" {
  description = "Role for tickwatch sqs-worker (null unless worker_role_services is set)."
  value       = module.tickwatch.worker_role_arn
}
