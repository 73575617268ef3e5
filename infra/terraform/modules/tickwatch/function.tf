# The processor: an SQS-triggered Lambda function running the Rust `bootstrap` binary, its log
# group, and the event source mapping that feeds it batches of ticks.

resource "aws_cloudwatch_log_group" "processor" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (30 days by default, as specified); stacks under a one-year retention rule set it to 365 or more.
  name              = local.names.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
  tags              = local.tags
}

locals {
  # Exactly the variables the function reads (crates/lambda/src/config.rs and the shared reader,
  # crates/aws/src/deploy.rs; `tickwatch sqs-worker` reads the same ones). RULES is set only when
  # there are overrides, so "no overrides" has a single representation (absent) on the function.
  function_environment = merge(
    {
      ALERTS_TABLE_NAME     = aws_dynamodb_table.alerts.name
      STATE_TABLE_NAME      = aws_dynamodb_table.state.name
      RULES_TABLE           = aws_dynamodb_table.rules.name
      RULES_REFRESH_SECONDS = tostring(var.rules_refresh_seconds)
      ALERTS_TOPIC_ARN      = aws_sns_topic.alerts.arn
      DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dead_letter.url
      HIGH_THRESHOLD        = tostring(var.high_threshold)
      LOW_THRESHOLD         = tostring(var.low_threshold)
      ALERT_MODE            = var.alert_mode
      HYSTERESIS            = tostring(var.hysteresis)
      LOG_LEVEL             = var.log_level
    },
    var.rules == "" ? {} : { RULES = var.rules },
  )
}

resource "aws_lambda_function" "processor" {
  #checkov:skip=CKV_AWS_50:X-Ray tracing would need xray:PutTraceSegments/PutTelemetryRecords on "*" (X-Ray has no resource-level permissions), outside the role's specified least-privilege action list; the function reports through JSON logs and CloudWatch metrics and alarms instead.
  #checkov:skip=CKV_AWS_116:A dead_letter_config only applies to asynchronous invocations. This function is invoked synchronously by the SQS event source mapping; failed ticks go to the queue's own redrive target (tickwatch-ticks-dlq-<suffix>) after max_receive_count receives.
  #checkov:skip=CKV_AWS_117:The function only calls public AWS APIs (DynamoDB, SNS, SQS, KMS, Logs) and reaches no private resources; VPC placement would add NAT or five interface endpoints for no isolation gain.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signed-artifact pipeline, which this project does not run; the package is built from source in CI and deployed by Terraform with its hash tracked (source_code_hash).
  function_name = local.names.function
  description   = "tickwatch ${local.suffix}: evaluates price ticks from SQS, stores alerts in DynamoDB and publishes them to SNS"
  role          = aws_iam_role.processor.arn

  # A custom-runtime Rust binary named bootstrap; the handler name is unused but required.
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.lambda_architecture]

  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)

  memory_size                    = var.lambda_memory_mb
  timeout                        = var.lambda_timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency

  # Environment variables are encrypted at rest with the stack's key instead of the AWS managed one.
  kms_key_arn = aws_kms_key.main.arn

  environment {
    variables = local.function_environment
  }

  # JSON platform logs; Lambda filters the application's JSON lines by their "level" field at the
  # same level the application is told to log at, so the two never disagree.
  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.processor.name
    application_log_level = upper(var.log_level)
    system_log_level      = "INFO"
  }

  tags = local.tags

  # The role must be able to write logs and use the key before the first invocation.
  depends_on = [aws_iam_role_policy.processor]
}

resource "aws_lambda_event_source_mapping" "ticks" {
  event_source_arn                   = aws_sqs_queue.ticks.arn
  function_name                      = aws_lambda_function.processor.arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_seconds

  # The function returns the ids of the messages it could not process; only those are retried,
  # the rest of the batch is deleted.
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.maximum_concurrency
  }

  tags = local.tags

  # Lambda checks at creation that the role may receive from the queue.
  depends_on = [aws_iam_role_policy.processor]
}
