# Everything a client, an operator or the deployed-stack tests need to find the stack.

output "environment_suffix" {
  description = "The suffix every resource name ends with."
  value       = var.environment_suffix
}

output "aws_region" {
  description = "Region the stack is deployed in."
  value       = local.region
}

output "queue_url" {
  description = "URL of the tick queue (send ticks here)."
  value       = aws_sqs_queue.ticks.url
}

output "queue_arn" {
  description = "ARN of the tick queue."
  value       = aws_sqs_queue.ticks.arn
}

output "queue_name" {
  description = "Name of the tick queue."
  value       = aws_sqs_queue.ticks.name
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dead_letter.url
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dead_letter.arn
}

output "alerts_table_name" {
  description = "Name of the alerts table (hash key symbol, range key timestamp)."
  value       = aws_dynamodb_table.alerts.name
}

output "alerts_table_arn" {
  description = "ARN of the alerts table."
  value       = aws_dynamodb_table.alerts.arn
}

output "state_table_name" {
  description = "Name of the per-symbol state table (hash key symbol)."
  value       = aws_dynamodb_table.state.name
}

output "state_table_arn" {
  description = "ARN of the per-symbol state table."
  value       = aws_dynamodb_table.state.arn
}

output "rules_table_name" {
  description = "Name of the alert rules table (hash key rule_id): the CLI writes the rules, the function reads them (RULES_TABLE)."
  value       = aws_dynamodb_table.rules.name
}

output "rules_table_arn" {
  description = "ARN of the alert rules table."
  value       = aws_dynamodb_table.rules.arn
}

output "alerts_topic_arn" {
  description = "ARN of the alerts topic."
  value       = aws_sns_topic.alerts.arn
}

output "function_name" {
  description = "Name of the processor function."
  value       = aws_lambda_function.processor.function_name
}

output "function_arn" {
  description = "ARN of the processor function."
  value       = aws_lambda_function.processor.arn
}

output "function_role_arn" {
  description = "ARN of the processor's execution role."
  value       = aws_iam_role.processor.arn
}

output "event_source_mapping_uuid" {
  description = "UUID of the queue -> function event source mapping."
  value       = aws_lambda_event_source_mapping.ticks.uuid
}

output "kms_key_arn" {
  description = "ARN of the stack's customer-managed KMS key."
  value       = aws_kms_key.main.arn
}

output "kms_key_alias" {
  description = "Alias of the stack's KMS key."
  value       = aws_kms_alias.main.name
}

output "log_group_name" {
  description = "CloudWatch log group of the processor."
  value       = aws_cloudwatch_log_group.processor.name
}

output "alarm_names" {
  description = "Names of the three alarms: error rate, dead-letter queue not empty, oldest tick age."
  value = [
    aws_cloudwatch_metric_alarm.error_rate.alarm_name,
    aws_cloudwatch_metric_alarm.dlq_not_empty.alarm_name,
    aws_cloudwatch_metric_alarm.oldest_tick_age.alarm_name,
  ]
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard (null when dashboard_enabled is false)."
  value       = one(aws_cloudwatch_dashboard.main[*].dashboard_name)
}

output "worker_role_arn" {
  description = "ARN of the role for tickwatch sqs-worker (null unless worker_role_services is set)."
  value       = one(aws_iam_role.worker[*].arn)
}

output "worker_instance_profile_name" {
  description = "Instance profile of the worker role, for EC2 (null unless worker_role_services includes ec2.amazonaws.com)."
  value       = one(aws_iam_instance_profile.worker[*].name)
}
