# The tick queue feeding the function, and its dead-letter queue for ticks that keep failing.

resource "aws_sqs_queue" "dead_letter" {
  name                      = local.names.dead_letter_queue
  message_retention_seconds = local.message_retention_seconds
  kms_master_key_id         = aws_kms_key.main.arn

  # No redrive_allow_policy: see README.md, "Deliberately left out".

  tags = local.tags
}

resource "aws_sqs_queue" "ticks" {
  name                       = local.names.queue
  message_retention_seconds  = local.message_retention_seconds
  visibility_timeout_seconds = local.visibility_timeout_seconds
  kms_master_key_id          = aws_kms_key.main.arn

  # Written exactly as SQS returns it (a number for maxReceiveCount), so a refresh shows no diff.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = local.tags
}
