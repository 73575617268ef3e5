# The module with its defaults must produce exactly the settings of the system specification.
# Runs against a mock provider (no AWS, no emulator): `command = apply` lets the mock fill in ARNs so
# the IAM and key policies can be decoded and checked statement by statement.

mock_provider "aws" {
  source = "./tests/mocks"
}

# The second resource of each type gets its own ARN, so the IAM test can tell them apart. These
# overrides stay here, in the one file whose runs need them: in a mock data file they are not
# applied (checked: with them there, giving both queues one ARN fails no run).
override_resource {
  target = aws_sqs_queue.dead_letter
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:tickwatch-ticks-dlq-unit"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/tickwatch-ticks-dlq-unit"
  }
}

override_resource {
  target = aws_dynamodb_table.state
  values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/tickwatch-state-unit" }
}

# The third table too: without its own ARN the rules table would share the alerts table's, and the
# read-only checks below could not tell the alerts table's writes from writes on the rules.
override_resource {
  target = aws_dynamodb_table.rules
  values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/tickwatch-rules-unit" }
}

variables {
  environment_suffix = "unit"
  team               = "market-data"
  cost_center        = "cc-42"
  lambda_zip_path    = "tests/fixtures/placeholder-package.txt"
}

run "function" {
  assert {
    condition     = aws_lambda_function.processor.function_name == "tickwatch-processor-unit"
    error_message = "Function name must be tickwatch-processor-<suffix>."
  }
  assert {
    condition     = aws_lambda_function.processor.runtime == "provided.al2023" && aws_lambda_function.processor.handler == "bootstrap"
    error_message = "The function must run the custom runtime provided.al2023 with handler bootstrap."
  }
  assert {
    condition     = aws_lambda_function.processor.architectures == tolist(["arm64"])
    error_message = "The function must run on arm64 by default."
  }
  assert {
    condition     = aws_lambda_function.processor.memory_size == 3072
    error_message = "Memory must be 3072 MB."
  }
  assert {
    condition     = aws_lambda_function.processor.timeout == 60
    error_message = "Timeout must be 60 s."
  }
  assert {
    condition     = aws_lambda_function.processor.reserved_concurrent_executions == 5
    error_message = "Reserved concurrency must be 5."
  }
  assert {
    condition     = aws_lambda_function.processor.kms_key_arn == aws_kms_key.main.arn
    error_message = "Environment variables must be encrypted with the stack's key."
  }
  assert {
    condition     = aws_lambda_function.processor.source_code_hash == filebase64sha256(var.lambda_zip_path)
    error_message = "source_code_hash must track the package so a new zip redeploys."
  }
  assert {
    condition     = aws_lambda_function.processor.role == aws_iam_role.processor.arn
    error_message = "The function must run as the processor role."
  }
  assert {
    condition = keys(aws_lambda_function.processor.environment[0].variables) == tolist([
      "ALERTS_TABLE_NAME", "ALERTS_TOPIC_ARN", "ALERT_MODE", "DEAD_LETTER_QUEUE_URL",
      "HIGH_THRESHOLD", "HYSTERESIS", "LOG_LEVEL", "LOW_THRESHOLD", "RULES_REFRESH_SECONDS",
      "RULES_TABLE", "STATE_TABLE_NAME",
    ])
    error_message = "The environment must hold exactly the variables the function reads (RULES only when set)."
  }
  assert {
    condition = (
      aws_lambda_function.processor.environment[0].variables["ALERTS_TABLE_NAME"] == aws_dynamodb_table.alerts.name &&
      aws_lambda_function.processor.environment[0].variables["STATE_TABLE_NAME"] == aws_dynamodb_table.state.name &&
      aws_lambda_function.processor.environment[0].variables["ALERTS_TOPIC_ARN"] == aws_sns_topic.alerts.arn &&
      aws_lambda_function.processor.environment[0].variables["DEAD_LETTER_QUEUE_URL"] == aws_sqs_queue.dead_letter.url
    )
    error_message = "Environment variables must point at this stack's tables, topic and dead-letter queue."
  }
  assert {
    condition     = aws_lambda_function.processor.environment[0].variables["RULES_TABLE"] == "tickwatch-rules-unit"
    error_message = "RULES_TABLE must name this stack's rules table, tickwatch-rules-<suffix>."
  }
  assert {
    condition     = aws_lambda_function.processor.environment[0].variables["RULES_TABLE"] == aws_dynamodb_table.rules.name
    error_message = "RULES_TABLE must be the rules table's name."
  }
  assert {
    condition     = aws_lambda_function.processor.environment[0].variables["RULES_REFRESH_SECONDS"] == "10"
    error_message = "RULES_REFRESH_SECONDS must default to 10."
  }
  assert {
    condition = (
      aws_lambda_function.processor.environment[0].variables["HIGH_THRESHOLD"] == "150" &&
      aws_lambda_function.processor.environment[0].variables["LOW_THRESHOLD"] == "50" &&
      aws_lambda_function.processor.environment[0].variables["ALERT_MODE"] == "cross" &&
      aws_lambda_function.processor.environment[0].variables["HYSTERESIS"] == "0" &&
      aws_lambda_function.processor.environment[0].variables["LOG_LEVEL"] == "info"
    )
    error_message = "Default thresholds must be 150/50, mode cross, hysteresis 0, log level info."
  }
  assert {
    condition = (
      aws_lambda_function.processor.logging_config[0].log_format == "JSON" &&
      aws_lambda_function.processor.logging_config[0].log_group == aws_cloudwatch_log_group.processor.name &&
      aws_lambda_function.processor.logging_config[0].application_log_level == "INFO"
    )
    error_message = "The function must log JSON to its own log group, filtered at LOG_LEVEL."
  }
  assert {
    condition = (
      aws_cloudwatch_log_group.processor.name == "/aws/lambda/tickwatch-processor-unit" &&
      aws_cloudwatch_log_group.processor.retention_in_days == 30 &&
      aws_cloudwatch_log_group.processor.kms_key_id == aws_kms_key.main.arn
    )
    error_message = "Log group must be /aws/lambda/<function>, keep 30 days and be encrypted with the stack's key."
  }
}

run "event_source_mapping" {
  assert {
    condition     = aws_lambda_event_source_mapping.ticks.event_source_arn == aws_sqs_queue.ticks.arn
    error_message = "The function must be fed by the tick queue."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.ticks.function_name == aws_lambda_function.processor.arn
    error_message = "The mapping must target the processor."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.ticks.batch_size == 25
    error_message = "Batch size must be 25."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.ticks.maximum_batching_window_in_seconds >= 1
    error_message = "A batch size above 10 needs a batching window of at least 1 s."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.ticks.function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "The function must report partial batch failures."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.ticks.scaling_config[0].maximum_concurrency == 5
    error_message = "The mapping's maximum concurrency must be 5."
  }
}

run "queues" {
  assert {
    condition     = aws_sqs_queue.ticks.name == "tickwatch-ticks-unit" && aws_sqs_queue.dead_letter.name == "tickwatch-ticks-dlq-unit"
    error_message = "Queues must be tickwatch-ticks-<suffix> and tickwatch-ticks-dlq-<suffix>."
  }
  assert {
    condition     = aws_sqs_queue.ticks.message_retention_seconds == 1209600 && aws_sqs_queue.dead_letter.message_retention_seconds == 1209600
    error_message = "Both queues must retain messages 14 days (1209600 s)."
  }
  assert {
    condition     = aws_sqs_queue.ticks.visibility_timeout_seconds >= 6 * aws_lambda_function.processor.timeout && aws_sqs_queue.ticks.visibility_timeout_seconds == 360
    error_message = "Visibility timeout must be 6x the function timeout (360 s)."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.ticks.redrive_policy).maxReceiveCount == 5
    error_message = "Ticks must move to the dead-letter queue after 5 receives."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.ticks.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dead_letter.arn
    error_message = "The redrive target must be the dead-letter queue."
  }
  assert {
    condition     = aws_sqs_queue.ticks.kms_master_key_id == aws_kms_key.main.arn && aws_sqs_queue.dead_letter.kms_master_key_id == aws_kms_key.main.arn
    error_message = "Both queues must be encrypted with the stack's key."
  }
}

run "tables" {
  assert {
    condition     = aws_dynamodb_table.alerts.name == "tickwatch-alerts-unit" && aws_dynamodb_table.state.name == "tickwatch-state-unit"
    error_message = "Tables must be tickwatch-alerts-<suffix> and tickwatch-state-<suffix>."
  }
  assert {
    condition     = aws_dynamodb_table.alerts.hash_key == "symbol" && aws_dynamodb_table.alerts.range_key == "timestamp"
    error_message = "Alerts table keys must be symbol (hash) and timestamp (range)."
  }
  assert {
    condition     = aws_dynamodb_table.alerts.attribute == toset([{ name = "symbol", type = "S" }, { name = "timestamp", type = "S" }])
    error_message = "Alerts table key attributes must both be strings."
  }
  assert {
    condition     = aws_dynamodb_table.state.hash_key == "symbol" && aws_dynamodb_table.state.range_key == null
    error_message = "State table must have hash key symbol and no range key."
  }
  assert {
    condition     = aws_dynamodb_table.state.attribute == toset([{ name = "symbol", type = "S" }])
    error_message = "State table hash key must be a string."
  }
  assert {
    condition = alltrue([
      for table in [aws_dynamodb_table.alerts, aws_dynamodb_table.state] :
      table.billing_mode == "PAY_PER_REQUEST" &&
      table.point_in_time_recovery[0].enabled &&
      !table.deletion_protection_enabled &&
      table.server_side_encryption[0].enabled &&
      table.server_side_encryption[0].kms_key_arn == aws_kms_key.main.arn
    ])
    error_message = "Both tables must be on-demand, with PITR, without deletion protection, encrypted with the stack's key."
  }
}

run "rules_table" {
  assert {
    condition     = aws_dynamodb_table.rules.name == "tickwatch-rules-unit"
    error_message = "Rules table must be tickwatch-rules-<suffix>."
  }
  assert {
    condition     = aws_dynamodb_table.rules.hash_key == "rule_id"
    error_message = "Rules table hash key must be rule_id."
  }
  assert {
    condition     = aws_dynamodb_table.rules.range_key == null
    error_message = "Rules table must have no range key."
  }
  assert {
    condition     = aws_dynamodb_table.rules.attribute == toset([{ name = "rule_id", type = "S" }])
    error_message = "Rules table must define exactly one attribute, rule_id, a string."
  }
  assert {
    condition     = aws_dynamodb_table.rules.billing_mode == "PAY_PER_REQUEST"
    error_message = "Rules table must be on-demand (PAY_PER_REQUEST)."
  }
  assert {
    condition     = aws_dynamodb_table.rules.point_in_time_recovery[0].enabled
    error_message = "Rules table must have point-in-time recovery enabled."
  }
  assert {
    condition     = aws_dynamodb_table.rules.server_side_encryption[0].enabled && aws_dynamodb_table.rules.server_side_encryption[0].kms_key_arn == aws_kms_key.main.arn
    error_message = "Rules table must be encrypted with the stack's key."
  }
  assert {
    condition     = aws_dynamodb_table.rules.deletion_protection_enabled == false
    error_message = "Rules table must be deletable with the stack, as the alerts and state tables are."
  }
  assert {
    condition     = aws_dynamodb_table.rules.tags == tomap({ Environment = "unit", Team = "market-data", CostCenter = "cc-42" })
    error_message = "Rules table must carry exactly Environment, Team and CostCenter by default."
  }
  assert {
    condition     = output.rules_table_name == aws_dynamodb_table.rules.name && output.rules_table_arn == "arn:aws:dynamodb:us-east-1:123456789012:table/tickwatch-rules-unit"
    error_message = "rules_table_name and rules_table_arn must expose the rules table."
  }
}

run "topic_and_key" {
  assert {
    condition     = aws_sns_topic.alerts.name == "tickwatch-alerts-unit" && aws_sns_topic.alerts.kms_master_key_id == aws_kms_key.main.arn
    error_message = "Topic must be tickwatch-alerts-<suffix>, encrypted with the stack's key."
  }
  assert {
    condition     = aws_kms_key.main.enable_key_rotation && aws_kms_key.main.deletion_window_in_days == 7
    error_message = "Key must rotate and have a 7-day deletion window."
  }
  assert {
    condition     = aws_kms_alias.main.name == "alias/tickwatch-unit" && aws_kms_alias.main.target_key_id == aws_kms_key.main.key_id
    error_message = "Key alias must be alias/tickwatch-<suffix>."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_kms_key.main.policy).Statement : s.Condition.ArnEquals["kms:EncryptionContext:aws:logs:arn"]
      if s.Sid == "CloudWatchLogs"
    ]) == "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/tickwatch-processor-unit"
    error_message = "CloudWatch Logs may use the key only for this stack's log group."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_kms_key.main.policy).Statement : s.Principal.AWS if s.Sid == "ProcessorUse"
    ]) == aws_iam_role.processor.arn
    error_message = "The key policy must let the processor role use the key."
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_kms_key.main.policy).Statement : try(flatten([s.Principal.Service]), [])
    ])) == toset(["sqs.amazonaws.com", "sns.amazonaws.com", "logs.us-east-1.amazonaws.com", "cloudwatch.amazonaws.com"])
    error_message = "The key policy must admit exactly the services that use the key."
  }
}

run "alarms" {
  assert {
    condition     = aws_cloudwatch_metric_alarm.error_rate.alarm_name == "tickwatch-error-rate-unit"
    error_message = "Error-rate alarm must be tickwatch-error-rate-<suffix>."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.error_rate.threshold == 1 &&
      aws_cloudwatch_metric_alarm.error_rate.comparison_operator == "GreaterThanThreshold" &&
      aws_cloudwatch_metric_alarm.error_rate.evaluation_periods == 1 &&
      aws_cloudwatch_metric_alarm.error_rate.treat_missing_data == "notBreaching"
    )
    error_message = "Error-rate alarm must fire above 1 % over one period, missing data not breaching."
  }
  assert {
    condition = one([
      for q in aws_cloudwatch_metric_alarm.error_rate.metric_query : q.expression if q.return_data == true
    ]) == "100 * errors / invocations"
    error_message = "Error rate must be 100 * Errors / Invocations."
  }
  assert {
    condition = toset([
      for q in aws_cloudwatch_metric_alarm.error_rate.metric_query :
      "${q.id}=${q.metric[0].namespace}/${q.metric[0].metric_name}/${q.metric[0].stat}/${q.metric[0].period}/${q.metric[0].dimensions["FunctionName"]}"
      if length(q.metric) > 0
    ]) == toset(["errors=AWS/Lambda/Errors/Sum/300/tickwatch-processor-unit", "invocations=AWS/Lambda/Invocations/Sum/300/tickwatch-processor-unit"])
    error_message = "Errors and Invocations of the function must be summed over 300 s."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.dlq_not_empty.alarm_name == "tickwatch-dlq-not-empty-unit" &&
      aws_cloudwatch_metric_alarm.dlq_not_empty.metric_name == "ApproximateNumberOfMessagesVisible" &&
      aws_cloudwatch_metric_alarm.dlq_not_empty.dimensions["QueueName"] == "tickwatch-ticks-dlq-unit" &&
      aws_cloudwatch_metric_alarm.dlq_not_empty.comparison_operator == "GreaterThanThreshold" &&
      aws_cloudwatch_metric_alarm.dlq_not_empty.threshold == 0
    )
    error_message = "DLQ alarm must fire when the dead-letter queue has any visible message."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.oldest_tick_age.alarm_name == "tickwatch-oldest-tick-age-unit" &&
      aws_cloudwatch_metric_alarm.oldest_tick_age.metric_name == "ApproximateAgeOfOldestMessage" &&
      aws_cloudwatch_metric_alarm.oldest_tick_age.dimensions["QueueName"] == "tickwatch-ticks-unit" &&
      aws_cloudwatch_metric_alarm.oldest_tick_age.threshold == 300
    )
    error_message = "Tick-age alarm must fire when the oldest tick is older than 300 s."
  }
  assert {
    condition = alltrue([
      for a in [aws_cloudwatch_metric_alarm.error_rate, aws_cloudwatch_metric_alarm.dlq_not_empty, aws_cloudwatch_metric_alarm.oldest_tick_age] :
      length(a.alarm_actions) == 0 && length(a.ok_actions) == 0
    ])
    error_message = "Alarms have no actions unless alarm_action_arns is set."
  }
  assert {
    condition     = output.alarm_names == ["tickwatch-error-rate-unit", "tickwatch-dlq-not-empty-unit", "tickwatch-oldest-tick-age-unit"]
    error_message = "alarm_names must list the three alarms."
  }
}

run "iam" {
  assert {
    condition     = aws_iam_role.processor.name == "tickwatch-processor-unit"
    error_message = "Role must be tickwatch-processor-<suffix>."
  }
  assert {
    condition     = jsondecode(aws_iam_role.processor.assume_role_policy).Statement[0].Principal.Service == "lambda.amazonaws.com" && length(jsondecode(aws_iam_role.processor.assume_role_policy).Statement) == 1
    error_message = "Only Lambda may assume the role."
  }
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_role_policy.processor.policy).Statement : [
        for r in flatten([s.Resource]) : r != "*" && !startswith(r, "*")
      ]
    ]))
    error_message = "No statement of the role policy may apply to every resource (\"*\")."
  }
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_role_policy.processor.policy).Statement : [
        for a in flatten([s.Action]) : !strcontains(a, "*")
      ]
    ]))
    error_message = "The role policy must not use wildcard actions."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.processor.policy).Statement : s.Effect == "Allow" && !can(s.NotAction) && !can(s.NotResource)
    ])
    error_message = "The role policy must only allow, by explicit action and resource."
  }
  assert {
    # One line per (resource, actions) pair: exactly the specified grants, each on its one resource.
    condition = toset([
      for s in jsondecode(aws_iam_role_policy.processor.policy).Statement :
      "${join(",", flatten([s.Resource]))} => ${join(",", sort(flatten([s.Action])))}"
      ]) == toset([
      "${aws_sqs_queue.ticks.arn} => sqs:DeleteMessage,sqs:GetQueueAttributes,sqs:ReceiveMessage",
      "${aws_sqs_queue.dead_letter.arn} => sqs:GetQueueAttributes,sqs:SendMessage",
      "${aws_dynamodb_table.alerts.arn} => dynamodb:BatchGetItem,dynamodb:DescribeTable,dynamodb:GetItem,dynamodb:PutItem,dynamodb:UpdateItem",
      "${aws_dynamodb_table.state.arn} => dynamodb:DescribeTable,dynamodb:PutItem",
      "${aws_dynamodb_table.rules.arn} => dynamodb:GetItem,dynamodb:Scan",
      "${aws_sns_topic.alerts.arn} => sns:GetTopicAttributes,sns:Publish",
      "${aws_kms_key.main.arn} => kms:Decrypt,kms:GenerateDataKey",
      "${aws_cloudwatch_log_group.processor.arn},${aws_cloudwatch_log_group.processor.arn}:* => logs:CreateLogStream,logs:PutLogEvents",
    ])
    error_message = "The role policy must grant exactly the specified actions, each on its one resource."
  }
  assert {
    # Every action on the rules table, from any statement: exactly the two reads.
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.processor.policy).Statement : flatten([s.Action])
      if contains(flatten([s.Resource]), "arn:aws:dynamodb:us-east-1:123456789012:table/tickwatch-rules-unit")
    ])) == toset(["dynamodb:GetItem", "dynamodb:Scan"])
    error_message = "The function may only read the rules table: dynamodb:GetItem and dynamodb:Scan."
  }
  assert {
    condition = length(setintersection(
      toset(flatten([
        for s in jsondecode(aws_iam_role_policy.processor.policy).Statement : flatten([s.Action])
        if contains(flatten([s.Resource]), aws_dynamodb_table.rules.arn)
      ])),
      toset(["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]),
    )) == 0
    error_message = "The function must not write to the rules table (no PutItem, UpdateItem, DeleteItem or BatchWriteItem)."
  }
}

run "names_and_tags" {
  assert {
    condition = alltrue([
      for name in [
        aws_sqs_queue.ticks.name, aws_sqs_queue.dead_letter.name, aws_dynamodb_table.alerts.name,
        aws_dynamodb_table.state.name, aws_dynamodb_table.rules.name, aws_sns_topic.alerts.name, aws_lambda_function.processor.function_name,
        aws_iam_role.processor.name, aws_iam_role_policy.processor.name, aws_cloudwatch_log_group.processor.name,
        aws_kms_alias.main.name, aws_cloudwatch_metric_alarm.error_rate.alarm_name,
        aws_cloudwatch_metric_alarm.dlq_not_empty.alarm_name, aws_cloudwatch_metric_alarm.oldest_tick_age.alarm_name,
      ] : strcontains(name, "tickwatch-") && endswith(name, "-unit")
    ])
    error_message = "Every name must be tickwatch-<what>-<suffix>."
  }
  assert {
    condition = alltrue([
      for tags in [
        aws_kms_key.main.tags, aws_sqs_queue.ticks.tags, aws_sqs_queue.dead_letter.tags,
        aws_dynamodb_table.alerts.tags, aws_dynamodb_table.state.tags, aws_dynamodb_table.rules.tags, aws_sns_topic.alerts.tags,
        aws_lambda_function.processor.tags, aws_lambda_event_source_mapping.ticks.tags,
        aws_cloudwatch_log_group.processor.tags, aws_iam_role.processor.tags,
        aws_cloudwatch_metric_alarm.error_rate.tags, aws_cloudwatch_metric_alarm.dlq_not_empty.tags,
        aws_cloudwatch_metric_alarm.oldest_tick_age.tags,
      ] : tags == tomap({ Environment = "unit", Team = "market-data", CostCenter = "cc-42" })
    ])
    error_message = "Every taggable resource must carry exactly Environment, Team and CostCenter by default."
  }
  assert {
    condition     = output.queue_url == aws_sqs_queue.ticks.url && output.function_name == "tickwatch-processor-unit" && output.kms_key_arn == aws_kms_key.main.arn
    error_message = "Outputs must expose the stack's resources."
  }
}

run "dashboard" {
  assert {
    condition     = aws_cloudwatch_dashboard.main[0].dashboard_name == "tickwatch-unit"
    error_message = "The dashboard must exist by default, named tickwatch-<suffix>."
  }
  assert {
    condition = [for w in jsondecode(aws_cloudwatch_dashboard.main[0].dashboard_body).widgets : w.properties.title] == [
      "Ticks and alerts per second",
      "Rejected ticks by reason",
      "Failed messages (left for redelivery)",
      "Tick queue: depth and oldest message age",
      "Dead-letter queue depth",
      "Function duration (ms)",
      "Function errors, throttles and concurrency",
    ]
    error_message = "The dashboard must show throughput, rejections by reason, failures, both queues and the function."
  }
  assert {
    condition = alltrue([
      for needle in [
        "\"TicksProcessed\"", "\"AlertsRaised\"", "TicksRejectedByReason", "\"MessagesFailed\"",
        "\"ApproximateAgeOfOldestMessage\"", "\"tickwatch-ticks-dlq-unit\"", "\"p50\"", "\"p99\"",
        "\"Throttles\"", "\"ConcurrentExecutions\"", "\"tickwatch-processor-unit\"",
      ] : strcontains(aws_cloudwatch_dashboard.main[0].dashboard_body, needle)
    ])
    error_message = "The dashboard must chart the EMF metrics of this function, the dead-letter queue and the duration percentiles."
  }
}

run "no_worker_role_by_default" {
  assert {
    condition     = length(aws_iam_role.worker) == 0 && length(aws_iam_instance_profile.worker) == 0
    error_message = "No worker role unless worker_role_services asks for one."
  }
  assert {
    condition     = !contains([for s in jsondecode(aws_kms_key.main.policy).Statement : s.Sid], "WorkerUse")
    error_message = "Without a worker role the key policy must not mention one."
  }
}

# The worker role, when there is one, reads the rules as the function does and writes nothing there.
# Here, not in variants.tftest.hcl, because it needs the rules table's own ARN (the overrides above).
run "worker_reads_rules_only" {
  variables {
    worker_role_services = ["ecs-tasks.amazonaws.com"]
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.worker[0].policy).Statement : flatten([s.Action])
      if contains(flatten([s.Resource]), "arn:aws:dynamodb:us-east-1:123456789012:table/tickwatch-rules-unit")
    ])) == toset(["dynamodb:GetItem", "dynamodb:Scan"])
    error_message = "The worker may only read the rules table: dynamodb:GetItem and dynamodb:Scan."
  }
  assert {
    condition = length(setintersection(
      toset(flatten([
        for s in jsondecode(aws_iam_role_policy.worker[0].policy).Statement : flatten([s.Action])
        if contains(flatten([s.Resource]), aws_dynamodb_table.rules.arn)
      ])),
      toset(["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]),
    )) == 0
    error_message = "The worker must not write to the rules table (no PutItem, UpdateItem, DeleteItem or BatchWriteItem)."
  }
}
