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
  # DynamoDB actions on each table. TransactWriteItems across both tables is authorised by these
  # per-item actions (PutItem, UpdateItem, ConditionCheckItem); it has no IAM action of its own.
  table_actions = [
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
  ]

  processor_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ConsumeTicks"
        Effect   = "Allow"
        Action   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
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
        Action   = local.table_actions
        Resource = [aws_dynamodb_table.alerts.arn]
      },
      {
        Sid      = "TrackSymbolState"
        Effect   = "Allow"
        Action   = local.table_actions
        Resource = [aws_dynamodb_table.state.arn]
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
