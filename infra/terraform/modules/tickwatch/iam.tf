# The processor's execution role. Its one inline policy grants exactly the actions the function
# performs, each on the one resource it performs them on (see README.md, "IAM review").

resource "aws_iam_role" "processor" {
  name        = local.names.role
  description = "Execution role of ${local.names.function}"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "LambdaAssumeRole"
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = local.tags
}

locals {
  # TransactWriteItems (a state change with its alerts, across both tables) has no IAM action of
  # its own: it is authorised by the per-item actions it contains, here PutItem on each table.
  # DescribeTable is the start-up check on each table.
  alerts_table_actions = [
    "dynamodb:BatchGetItem", # look up the alerts of redelivered ticks
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",    # read an existing alert when a conditional write did not return it
    "dynamodb:PutItem",    # store alerts, conditionally (idempotent)
    "dynamodb:UpdateItem", # mark alerts notified
  ]
  # Symbol state is only ever written whole, with a compare-and-set condition; a conflict returns
  # the stored item, so the function never reads it separately.
  state_table_actions = [
    "dynamodb:DescribeTable",
    "dynamodb:PutItem",
  ]
  # The rules are written by the CLI, never by the function: it only reads them (GetItem of the
  # rules' version item at most every RULES_REFRESH_SECONDS, and a Scan to load the rules at start-up
  # and when that version changed). No Query: with a hash key only, it could do nothing GetItem cannot.
  rules_table_actions = [
    "dynamodb:GetItem",
    "dynamodb:Scan",
  ]

  processor_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ConsumeTicks"
        Effect   = "Allow"
        Action   = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        Resource = [aws_sqs_queue.ticks.arn]
      },
      {
        # GetQueueAttributes: the function checks the DLQ exists at start-up (and warms the connection).
        Sid      = "DeadLetterPoisonTicks"
        Effect   = "Allow"
        Action   = ["sqs:GetQueueAttributes", "sqs:SendMessage"]
        Resource = [aws_sqs_queue.dead_letter.arn]
      },
      {
        Sid      = "WriteAlerts"
        Effect   = "Allow"
        Action   = local.alerts_table_actions
        Resource = [aws_dynamodb_table.alerts.arn]
      },
      {
        Sid      = "TrackSymbolState"
        Effect   = "Allow"
        Action   = local.state_table_actions
        Resource = [aws_dynamodb_table.state.arn]
      },
      {
        Sid      = "ReadRules"
        Effect   = "Allow"
        Action   = local.rules_table_actions
        Resource = [aws_dynamodb_table.rules.arn]
      },
      {
        # GetTopicAttributes: the start-up check that the topic exists (and connection warm-up).
        Sid      = "PublishAlerts"
        Effect   = "Allow"
        Action   = ["sns:GetTopicAttributes", "sns:Publish"]
        Resource = [aws_sns_topic.alerts.arn]
      },
      {
        Sid      = "UseStackKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [aws_kms_key.main.arn]
      },
      {
        # The log group already exists (Terraform creates it), so no logs:CreateLogGroup.
        Sid      = "WriteLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = [aws_cloudwatch_log_group.processor.arn, "${aws_cloudwatch_log_group.processor.arn}:*"]
      },
    ]
  }
}

resource "aws_iam_role_policy" "processor" {
  name   = local.names.policy
  role   = aws_iam_role.processor.id
  policy = jsonencode(local.processor_policy)
}
