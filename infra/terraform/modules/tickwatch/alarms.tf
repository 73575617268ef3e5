# Three alarms: the function is failing, ticks are being dead-lettered, ticks are waiting too long.
# Each notifies alarm_action_arns on ALARM and on recovery (OK).

resource "aws_cloudwatch_metric_alarm" "error_rate" {
  alarm_name          = local.names.error_rate_alarm
  alarm_description   = "More than ${var.error_rate_threshold_percent}% of ${local.names.function} invocations failed over 5 minutes."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_threshold_percent
  evaluation_periods  = 1
  # No invocations means no data point (the division has nothing to divide), which is healthy.
  treat_missing_data = "notBreaching"
  alarm_actions      = var.alarm_action_arns
  ok_actions         = var.alarm_action_arns

  metric_query {
    id          = "error_rate"
    label       = "Error rate (%)"
    expression  = "100 * errors / invocations"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = aws_lambda_function.processor.function_name }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "invocations"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions  = { FunctionName = aws_lambda_function.processor.function_name }
      stat        = "Sum"
      period      = 300
    }
  }

  tags = local.tags
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  alarm_name          = local.names.dlq_alarm
  alarm_description   = "Ticks are in ${local.names.dead_letter_queue}: they failed ${var.max_receive_count} times or were rejected as malformed. Inspect them, fix, then redrive."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letter.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_action_arns
  ok_actions          = var.alarm_action_arns
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_tick_age" {
  alarm_name          = local.names.tick_age_alarm
  alarm_description   = "The oldest tick in ${local.names.queue} is older than ${var.oldest_tick_age_threshold_seconds} s: the processor is falling behind or failing."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.ticks.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.oldest_tick_age_threshold_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_action_arns
  ok_actions          = var.alarm_action_arns
  tags                = local.tags
}
