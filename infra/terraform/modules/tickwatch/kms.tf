# One customer-managed key encrypts everything the stack stores: the function's environment
# variables, both queues, the topic, the three tables and the log group.

resource "aws_kms_key" "main" {
  description             = "tickwatch ${local.suffix}: Lambda environment, SQS queues, SNS topic, DynamoDB tables, CloudWatch log group"
  enable_key_rotation     = true
  deletion_window_in_days = 7 # the minimum: a destroyed stack leaves no key behind for long
  policy                  = jsonencode(local.key_policy)
  tags                    = local.tags
}

resource "aws_kms_alias" "main" {
  name          = local.names.key_alias
  target_key_id = aws_kms_key.main.key_id
}

locals {
  # In a key policy "Resource": "*" means "this key"; it cannot name anything else.
  key_policy = {
    Version = "2012-10-17"
    Statement = flatten([
      {
        # Without this statement nobody could ever change or delete the key: IAM policies in the
        # account only apply to a key whose policy delegates to the account root.
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # The function decrypts its environment variables and encrypted messages it reads (queue),
        # and generates data keys for what it writes (dead-letter queue, topic).
        Sid       = "ProcessorUse"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.processor.arn }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
      # The worker role, when there is one, uses the key as the function does.
      local.worker_role_enabled ? [{
        Sid       = "WorkerUse"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.worker[0].arn }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      }] : [],
      {
        # AWS services that deliver into the encrypted queues or topic on behalf of this account
        # (for example an SNS subscription feeding ticks into the queue).
        Sid       = "MessagingServices"
        Effect    = "Allow"
        Principal = { Service = ["sqs.amazonaws.com", "sns.amazonaws.com"] }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      {
        # CloudWatch Logs encrypts the function's log group; the encryption context pins the
        # permission to that one log group.
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnEquals = { "kms:EncryptionContext:aws:logs:arn" = local.log_group_arn }
        }
      },
      {
        # CloudWatch alarms publishing to the encrypted alerts topic (when it is one of
        # alarm_action_arns) need the data key. AWS documents this statement without conditions:
        # CloudWatch does not send aws:SourceAccount / kms:CallerAccount on these calls.
        Sid       = "CloudWatchAlarmActions"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ])
  }
}
