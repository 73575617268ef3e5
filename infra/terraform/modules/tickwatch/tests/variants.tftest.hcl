# Non-default inputs flow where they should: thresholds, mode and hysteresis reach the function,
# RULES appears only when set, the visibility timeout follows the function timeout, extra tags are
# added without displacing the required ones, alarm actions and subscriptions are wired.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment_suffix = "variant-1"
  team               = "market-data"
  cost_center        = "cc-42"
  lambda_zip_path    = "tests/fixtures/placeholder-package.txt"
}

run "custom_rules_and_mode" {
  variables {
    alert_mode          = "level"
    high_threshold      = 300.5
    low_threshold       = 10
    hysteresis          = 2.5
    rules               = "{\"AAPL\":{\"high\":200,\"low\":120},\"MSFT\":{\"high\":500,\"mode\":\"cross\",\"hysteresis\":4}}"
    log_level           = "debug"
    lambda_architecture = "x86_64"
  }
  assert {
    condition     = aws_lambda_function.processor.environment[0].variables["RULES"] == "{\"AAPL\":{\"high\":200,\"low\":120},\"MSFT\":{\"high\":500,\"mode\":\"cross\",\"hysteresis\":4}}"
    error_message = "RULES must be passed through verbatim when set, with every field the function accepts per symbol."
  }
  assert {
    condition = (
      aws_lambda_function.processor.environment[0].variables["ALERT_MODE"] == "level" &&
      aws_lambda_function.processor.environment[0].variables["HIGH_THRESHOLD"] == "300.5" &&
      aws_lambda_function.processor.environment[0].variables["LOW_THRESHOLD"] == "10" &&
      aws_lambda_function.processor.environment[0].variables["HYSTERESIS"] == "2.5" &&
      aws_lambda_function.processor.environment[0].variables["LOG_LEVEL"] == "debug"
    )
    error_message = "Mode, thresholds, hysteresis and log level must reach the function."
  }
  assert {
    condition     = aws_lambda_function.processor.logging_config[0].application_log_level == "DEBUG"
    error_message = "Lambda's application log filter must follow LOG_LEVEL."
  }
  assert {
    condition     = aws_lambda_function.processor.architectures == tolist(["x86_64"])
    error_message = "lambda_architecture must reach the function."
  }
}

run "rules_table_follows_suffix_and_refresh" {
  variables {
    rules_refresh_seconds = 45
  }
  assert {
    condition     = aws_dynamodb_table.rules.name == "tickwatch-rules-variant-1"
    error_message = "The rules table must be named tickwatch-rules-<suffix>."
  }
  assert {
    condition     = aws_lambda_function.processor.environment[0].variables["RULES_TABLE"] == "tickwatch-rules-variant-1"
    error_message = "RULES_TABLE must follow the suffix."
  }
  assert {
    condition     = aws_lambda_function.processor.environment[0].variables["RULES_REFRESH_SECONDS"] == "45"
    error_message = "rules_refresh_seconds must reach the function as RULES_REFRESH_SECONDS."
  }
}

run "timeout_drives_visibility_timeout" {
  variables {
    lambda_timeout_seconds = 120
  }
  assert {
    condition     = aws_sqs_queue.ticks.visibility_timeout_seconds == 720
    error_message = "Visibility timeout must be 6x the function timeout."
  }
}

run "extra_tags_and_environment" {
  variables {
    environment = "staging"
    tags        = { Owner = "alice", Team = "ignored" }
  }
  assert {
    condition     = aws_sqs_queue.ticks.tags == tomap({ Environment = "staging", Team = "market-data", CostCenter = "cc-42", Owner = "alice" })
    error_message = "Extra tags are added; Team, CostCenter and Environment come from their variables."
  }
  assert {
    condition     = aws_dynamodb_table.rules.tags == tomap({ Environment = "staging", Team = "market-data", CostCenter = "cc-42", Owner = "alice" })
    error_message = "The rules table must carry the module's tags, extra ones included."
  }
}

run "alarm_actions_and_subscriptions" {
  variables {
    alarm_action_arns   = ["arn:aws:sns:us-east-1:123456789012:oncall"]
    alert_subscriptions = [{ protocol = "email", endpoint = "oncall@example.com" }]
  }
  assert {
    condition = alltrue([
      for a in [aws_cloudwatch_metric_alarm.error_rate, aws_cloudwatch_metric_alarm.dlq_not_empty, aws_cloudwatch_metric_alarm.oldest_tick_age] :
      a.alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:oncall"]) && a.ok_actions == toset(["arn:aws:sns:us-east-1:123456789012:oncall"])
    ])
    error_message = "Every alarm must notify alarm_action_arns on alarm and on recovery."
  }
  assert {
    condition     = aws_sns_topic_subscription.alerts["email:oncall@example.com"].topic_arn == aws_sns_topic.alerts.arn
    error_message = "Subscriptions must attach to the alerts topic."
  }
}

run "dashboard_can_be_turned_off" {
  variables {
    dashboard_enabled = false
  }
  assert {
    condition     = length(aws_cloudwatch_dashboard.main) == 0 && output.dashboard_name == null
    error_message = "dashboard_enabled = false must create no dashboard."
  }
}

run "subscriptions_with_filter_policies" {
  variables {
    alert_subscriptions = [
      { protocol = "email", endpoint = "aapl-desk@example.com", filter_policy = { symbol = ["AAPL"] } },
      { protocol = "sqs", endpoint = "arn:aws:sqs:us-east-1:123456789012:risk", filter_policy = { kind = ["LOW"], symbol = ["AAPL", "MSFT"] } },
      { protocol = "https", endpoint = "https://hooks.example.com/alerts" },
    ]
  }
  assert {
    condition = (
      jsondecode(aws_sns_topic_subscription.alerts["email:aapl-desk@example.com"].filter_policy) == { symbol = ["AAPL"] } &&
      aws_sns_topic_subscription.alerts["email:aapl-desk@example.com"].filter_policy_scope == "MessageAttributes"
    )
    error_message = "A subscription's filter_policy must reach SNS as JSON on the message attributes."
  }
  assert {
    condition     = jsondecode(aws_sns_topic_subscription.alerts["sqs:arn:aws:sqs:us-east-1:123456789012:risk"].filter_policy) == { kind = ["LOW"], symbol = ["AAPL", "MSFT"] }
    error_message = "Every attribute of a filter policy must be kept."
  }
  assert {
    condition     = aws_sns_topic_subscription.alerts["https:https://hooks.example.com/alerts"].filter_policy == null
    error_message = "A subscription without a filter_policy must get every alert."
  }
}

run "worker_role_for_ec2_and_ecs" {
  variables {
    worker_role_services = ["ec2.amazonaws.com", "ecs-tasks.amazonaws.com"]
  }
  assert {
    condition     = aws_iam_role.worker[0].name == "tickwatch-worker-variant-1" && aws_iam_instance_profile.worker[0].role == "tickwatch-worker-variant-1"
    error_message = "The worker role (and its EC2 instance profile) must be tickwatch-worker-<suffix>."
  }
  assert {
    condition     = toset(jsondecode(aws_iam_role.worker[0].assume_role_policy).Statement[0].Principal.Service) == toset(["ec2.amazonaws.com", "ecs-tasks.amazonaws.com"])
    error_message = "Only the services named in worker_role_services may assume the worker role."
  }
  assert {
    condition = (
      jsondecode(aws_iam_role_policy.worker[0].policy).Statement ==
      [for s in jsondecode(aws_iam_role_policy.processor.policy).Statement : s if s.Sid != "WriteLogs"]
    )
    error_message = "The worker must have exactly the function's grants, without its log group."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_kms_key.main.policy).Statement : s.Principal.AWS if s.Sid == "WorkerUse"
    ]) == aws_iam_role.worker[0].arn
    error_message = "The key policy must let the worker role use the stack key."
  }
}
