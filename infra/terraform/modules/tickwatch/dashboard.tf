# The on-call view of the stack: one CloudWatch dashboard with what the function does (from its
# EMF metrics), what the queues hold, and how the function runs.

locals {
  # EMF metrics carry the function name as their Service dimension.
  emf_service = local.names.function

  # Widgets in a 24-column grid, two per row.
  dashboard_widgets = [
    {
      title = "Ticks and alerts per second"
      metrics = [
        [{ expression = "ticks / PERIOD(ticks)", label = "ticks/s", id = "ticks_rate" }],
        [{ expression = "alerts / PERIOD(alerts)", label = "alerts/s", id = "alerts_rate" }],
        ["Tickwatch", "TicksProcessed", "Service", local.emf_service, { id = "ticks", visible = false, stat = "Sum" }],
        ["Tickwatch", "AlertsRaised", "Service", local.emf_service, { id = "alerts", visible = false, stat = "Sum" }],
      ]
    },
    {
      title = "Rejected ticks by reason"
      metrics = [
        [{
          expression = "SEARCH('{Tickwatch,Service,Reason} MetricName=\"TicksRejectedByReason\" Service=\"${local.emf_service}\"', 'Sum', 60)"
          label      = ""
          id         = "rejected"
        }],
      ]
    },
    {
      title = "Failed messages (left for redelivery)"
      metrics = [
        ["Tickwatch", "MessagesFailed", "Service", local.emf_service, { stat = "Sum", label = "failed messages" }],
        ["Tickwatch", "StaleTicks", "Service", local.emf_service, { stat = "Sum", label = "stale ticks" }],
      ]
    },
    {
      title = "Tick queue: depth and oldest message age"
      metrics = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.names.queue, { stat = "Maximum", label = "depth" }],
        ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", local.names.queue, { stat = "Maximum", label = "oldest (s)", yAxis = "right" }],
      ]
    },
    {
      title = "Dead-letter queue depth"
      metrics = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.names.dead_letter_queue, { stat = "Maximum", label = "dead letters" }],
      ]
    },
    {
      title = "Function duration (ms)"
      metrics = [
        ["AWS/Lambda", "Duration", "FunctionName", local.names.function, { stat = "p50", label = "p50" }],
        ["AWS/Lambda", "Duration", "FunctionName", local.names.function, { stat = "p99", label = "p99" }],
      ]
    },
    {
      title = "Function errors, throttles and concurrency"
      metrics = [
        ["AWS/Lambda", "Errors", "FunctionName", local.names.function, { stat = "Sum", label = "errors" }],
        ["AWS/Lambda", "Throttles", "FunctionName", local.names.function, { stat = "Sum", label = "throttles" }],
        ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", local.names.function, { stat = "Maximum", label = "concurrency", yAxis = "right" }],
      ]
    },
  ]
}

resource "aws_cloudwatch_dashboard" "main" {
  count          = var.dashboard_enabled ? 1 : 0
  dashboard_name = local.names.dashboard
  dashboard_body = jsonencode({
    widgets = [
      for i, w in local.dashboard_widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = w.title
          metrics = w.metrics
          region  = local.region
          view    = "timeSeries"
          stacked = false
          period  = 60
        }
      }
    ]
  })
}
