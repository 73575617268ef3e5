# Alert notifications. Encrypted with the stack's key; CloudWatch alarms may publish to it too.

resource "aws_sns_topic" "alerts" {
  name              = local.names.topic
  kms_master_key_id = aws_kms_key.main.arn
  tags              = local.tags
}

resource "aws_sns_topic_policy" "alerts" {
  arn = aws_sns_topic.alerts.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # What SNS grants by default: principals of this account, subject to their IAM policies.
        Sid       = "AccountPrincipals"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission", "sns:RemovePermission",
          "sns:DeleteTopic", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish",
        ]
        Resource = aws_sns_topic.alerts.arn
      },
      {
        # This stack's alarms, if alarm_action_arns points them at this topic.
        Sid       = "StackAlarms"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alerts.arn
        Condition = {
          ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:tickwatch-*-${local.suffix}" }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "alerts" {
  for_each = { for s in var.alert_subscriptions : "${s.protocol}:${s.endpoint}" => s }

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
  # The function publishes symbol, kind and alert_id as message attributes; a filter policy on
  # them delivers a subscriber only its alerts.
  filter_policy       = each.value.filter_policy == null ? null : jsonencode(each.value.filter_policy)
  filter_policy_scope = each.value.filter_policy == null ? null : "MessageAttributes"
}
