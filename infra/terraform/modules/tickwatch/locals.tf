# Names, tags and account facts shared by every file of the module.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  suffix = var.environment_suffix

  # Every name is tickwatch-<what>-<suffix>, so several stacks share an account without clashing.
  names = {
    key_alias         = "alias/tickwatch-${local.suffix}"
    queue             = "tickwatch-ticks-${local.suffix}"
    dead_letter_queue = "tickwatch-ticks-dlq-${local.suffix}"
    alerts_table      = "tickwatch-alerts-${local.suffix}"
    state_table       = "tickwatch-state-${local.suffix}"
    rules_table       = "tickwatch-rules-${local.suffix}"
    topic             = "tickwatch-alerts-${local.suffix}"
    function          = "tickwatch-processor-${local.suffix}"
    role              = "tickwatch-processor-${local.suffix}"
    policy            = "tickwatch-processor-${local.suffix}"
    log_group         = "/aws/lambda/tickwatch-processor-${local.suffix}"
    error_rate_alarm  = "tickwatch-error-rate-${local.suffix}"
    dlq_alarm         = "tickwatch-dlq-not-empty-${local.suffix}"
    tick_age_alarm    = "tickwatch-oldest-tick-age-${local.suffix}"
    dashboard         = "tickwatch-${local.suffix}"
    worker_role       = "tickwatch-worker-${local.suffix}"
  }

  # The three required tags win over anything in var.tags.
  tags = merge(var.tags, {
    Environment = coalesce(var.environment, local.suffix)
    Team        = var.team
    CostCenter  = var.cost_center
  })

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Built from the name rather than taken from the resource: the key policy must name the log group
  # before the log group can be created with the key (a resource reference would be a cycle).
  log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.names.log_group}"

  # SQS keeps messages at most 14 days; ticks older than that are worthless anyway, and the
  # dead-letter queue keeps poison ticks just as long for inspection.
  message_retention_seconds = 1209600

  # AWS recommends a visibility timeout of at least six times the function timeout for SQS event
  # sources, so a batch retried by the Lambda poller is not redelivered while still in flight.
  visibility_timeout_seconds = 6 * var.lambda_timeout_seconds
}
