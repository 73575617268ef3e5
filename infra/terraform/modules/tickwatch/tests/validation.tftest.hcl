# Every input validation rejects what it should, at plan time. Each run sets one bad value and
# expects exactly that variable's validation to fail. For rules_refresh_seconds the ends of its range
# are also planned, to show the bounds are inclusive (a rejecting run alone cannot tell 1..3600 from
# 2..3599).

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment_suffix = "unit"
  team               = "market-data"
  cost_center        = "cc-42"
  lambda_zip_path    = "tests/fixtures/placeholder-package.txt"
}

run "low_threshold_equal_to_high" {
  command = plan
  variables {
    high_threshold = 100
    low_threshold  = 100
  }
  expect_failures = [var.low_threshold]
}

run "low_threshold_above_high" {
  command = plan
  variables {
    low_threshold = 200
  }
  expect_failures = [var.low_threshold]
}

run "zero_high_threshold" {
  command = plan
  variables {
    high_threshold = 0
    low_threshold  = -5
  }
  # low_threshold's own check refers to high_threshold, so Terraform reports only the first failure.
  expect_failures = [var.high_threshold]
}

run "negative_low_threshold" {
  command = plan
  variables {
    low_threshold = -1
  }
  expect_failures = [var.low_threshold]
}

run "negative_hysteresis" {
  command = plan
  variables {
    hysteresis = -0.5
  }
  expect_failures = [var.hysteresis]
}

run "hysteresis_as_wide_as_the_band" {
  command = plan
  variables {
    high_threshold = 120
    low_threshold  = 80
    hysteresis     = 40
  }
  expect_failures = [var.hysteresis]
}

run "hysteresis_wider_than_the_default_band" {
  command = plan
  variables {
    hysteresis = 100.5
  }
  expect_failures = [var.hysteresis]
}

run "unknown_alert_mode" {
  command = plan
  variables {
    alert_mode = "edge"
  }
  expect_failures = [var.alert_mode]
}

run "suffix_with_uppercase_and_underscore" {
  command = plan
  variables {
    environment_suffix = "Bad_Suffix"
  }
  expect_failures = [var.environment_suffix]
}

run "suffix_too_long" {
  command = plan
  variables {
    environment_suffix = "abcdefghijklmnopqrstuvwxy"
  }
  expect_failures = [var.environment_suffix]
}

run "suffix_ending_with_hyphen" {
  command = plan
  variables {
    environment_suffix = "dev-"
  }
  expect_failures = [var.environment_suffix]
}

run "blank_team" {
  command = plan
  variables {
    team = "  "
  }
  expect_failures = [var.team]
}

run "blank_cost_center" {
  command = plan
  variables {
    cost_center = ""
  }
  expect_failures = [var.cost_center]
}

run "reserved_aws_tag" {
  command = plan
  variables {
    tags = { "aws:owner" = "x" }
  }
  expect_failures = [var.tags]
}

run "unknown_architecture" {
  command = plan
  variables {
    lambda_architecture = "aarch64"
  }
  expect_failures = [var.lambda_architecture]
}

run "memory_out_of_range" {
  command = plan
  variables {
    lambda_memory_mb = 64
  }
  expect_failures = [var.lambda_memory_mb]
}

run "timeout_above_lambda_limit" {
  command = plan
  variables {
    lambda_timeout_seconds = 901
  }
  expect_failures = [var.lambda_timeout_seconds]
}

run "zero_reserved_concurrency" {
  command = plan
  variables {
    reserved_concurrency = 0
  }
  # maximum_concurrency's check refers to reserved_concurrency, so only the first failure is reported.
  expect_failures = [var.reserved_concurrency]
}

run "unknown_log_level" {
  command = plan
  variables {
    log_level = "verbose"
  }
  expect_failures = [var.log_level]
}

run "log_retention_not_accepted_by_cloudwatch" {
  command = plan
  variables {
    log_retention_days = 31
  }
  expect_failures = [var.log_retention_days]
}

run "rules_not_json" {
  command = plan
  variables {
    rules = "AAPL=200"
  }
  expect_failures = [var.rules]
}

run "rules_not_an_object" {
  command = plan
  variables {
    rules = "[1, 2]"
  }
  expect_failures = [var.rules]
}

run "rules_with_unknown_field" {
  command = plan
  variables {
    rules = "{\"AAPL\":{\"high\":200,\"floor\":120}}"
  }
  expect_failures = [var.rules]
}

run "batch_size_above_limit" {
  command = plan
  variables {
    batch_size = 10001
  }
  expect_failures = [var.batch_size]
}

run "no_batching_window_with_batch_above_10" {
  command = plan
  variables {
    maximum_batching_window_seconds = 0
  }
  expect_failures = [var.maximum_batching_window_seconds]
}

run "maximum_concurrency_below_2" {
  command = plan
  variables {
    maximum_concurrency = 1
  }
  expect_failures = [var.maximum_concurrency]
}

run "maximum_concurrency_above_reserved" {
  command = plan
  variables {
    maximum_concurrency = 6
  }
  expect_failures = [var.maximum_concurrency]
}

run "max_receive_count_zero" {
  command = plan
  variables {
    max_receive_count = 0
  }
  expect_failures = [var.max_receive_count]
}

run "alarm_action_not_an_arn" {
  command = plan
  variables {
    alarm_action_arns = ["oncall@example.com"]
  }
  expect_failures = [var.alarm_action_arns]
}

run "error_rate_threshold_not_a_percentage" {
  command = plan
  variables {
    error_rate_threshold_percent = 100
  }
  expect_failures = [var.error_rate_threshold_percent]
}

run "tick_age_threshold_zero" {
  command = plan
  variables {
    oldest_tick_age_threshold_seconds = 0
  }
  expect_failures = [var.oldest_tick_age_threshold_seconds]
}

run "unknown_subscription_protocol" {
  command = plan
  variables {
    alert_subscriptions = [{ protocol = "pager", endpoint = "123" }]
  }
  expect_failures = [var.alert_subscriptions]
}

run "duplicate_subscription" {
  command = plan
  variables {
    alert_subscriptions = [
      { protocol = "email", endpoint = "oncall@example.com" },
      { protocol = "email", endpoint = "oncall@example.com" },
    ]
  }
  expect_failures = [var.alert_subscriptions]
}

run "blank_environment_tag" {
  command = plan
  variables {
    environment = ""
  }
  expect_failures = [var.environment]
}

run "missing_package" {
  command = plan
  variables {
    lambda_zip_path = "tests/fixtures/does-not-exist.zip"
  }
  expect_failures = [var.lambda_zip_path]
}

run "filter_policy_on_an_attribute_alerts_do_not_carry" {
  command = plan
  variables {
    alert_subscriptions = [{ protocol = "email", endpoint = "x@example.com", filter_policy = { price = ["151"] } }]
  }
  expect_failures = [var.alert_subscriptions]
}

run "filter_policy_with_no_values" {
  command = plan
  variables {
    alert_subscriptions = [{ protocol = "email", endpoint = "x@example.com", filter_policy = { symbol = [] } }]
  }
  expect_failures = [var.alert_subscriptions]
}

run "worker_role_for_an_unknown_service" {
  command = plan
  variables {
    worker_role_services = ["lambda.amazonaws.com"]
  }
  expect_failures = [var.worker_role_services]
}

run "rules_refresh_seconds_zero" {
  command = plan
  variables {
    rules_refresh_seconds = 0
  }
  expect_failures = [var.rules_refresh_seconds]
}

run "rules_refresh_seconds_above_an_hour" {
  command = plan
  variables {
    rules_refresh_seconds = 3601
  }
  expect_failures = [var.rules_refresh_seconds]
}

run "rules_refresh_seconds_not_whole" {
  command = plan
  variables {
    rules_refresh_seconds = 2.5
  }
  expect_failures = [var.rules_refresh_seconds]
}

run "rules_refresh_seconds_minimum_accepted" {
  command = plan
  variables {
    rules_refresh_seconds = 1
  }
  assert {
    condition     = aws_lambda_function.processor.environment[0].variables["RULES_REFRESH_SECONDS"] == "1"
    error_message = "rules_refresh_seconds = 1 must be accepted and reach the function."
  }
}

run "rules_refresh_seconds_maximum_accepted" {
  command = plan
  variables {
    rules_refresh_seconds = 3600
  }
  assert {
    condition     = aws_lambda_function.processor.environment[0].variables["RULES_REFRESH_SECONDS"] == "3600"
    error_message = "rules_refresh_seconds = 3600 must be accepted and reach the function."
  }
}
