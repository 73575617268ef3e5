# Inputs of the tickwatch module. Every input has a validation block: a bad value fails at plan time
# with a message that says what to change, instead of failing half way through an apply.

# ---------------------------------------------------------------------------------------------------
# Naming and tagging
# ---------------------------------------------------------------------------------------------------

variable "environment_suffix" {
  description = "Suffix appended to every resource name (tickwatch-<what>-<suffix>), e.g. dev, staging, pr123. Lets several copies of the stack live in one account."
  type        = string

  validation {
    # The longest name built from it is "tickwatch-processor-<suffix>" (IAM role and Lambda function,
    # both limited to 64 characters); 24 keeps every name well inside every service's limit.
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$", var.environment_suffix))
    error_message = "environment_suffix must be 1-24 characters of lowercase letters, digits and hyphens, and must start and end with a letter or digit."
  }
}

variable "environment" {
  description = "Value of the Environment tag (e.g. dev, staging, prod). Defaults to environment_suffix when null."
  type        = string
  default     = null

  validation {
    condition     = var.environment == null || can(regex("^.{1,256}$", var.environment))
    error_message = "environment must be null or a non-empty string of at most 256 characters (an AWS tag value)."
  }
}

variable "team" {
  description = "Value of the Team tag: the team that owns and answers for this stack."
  type        = string

  validation {
    condition     = length(trimspace(var.team)) > 0 && length(var.team) <= 256
    error_message = "team must be a non-blank string of at most 256 characters (an AWS tag value)."
  }
}

variable "cost_center" {
  description = "Value of the CostCenter tag, used for cost allocation."
  type        = string

  validation {
    condition     = length(trimspace(var.cost_center)) > 0 && length(var.cost_center) <= 256
    error_message = "cost_center must be a non-blank string of at most 256 characters (an AWS tag value)."
  }
}

variable "tags" {
  description = "Extra tags for every taggable resource. Environment, Team and CostCenter always come from their own variables and cannot be overridden here."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.tags :
      length(key) >= 1 && length(key) <= 128 && length(value) <= 256 && !startswith(lower(key), "aws:")
    ])
    error_message = "tags keys must be 1-128 characters and not start with \"aws:\"; values at most 256 characters."
  }
}

# ---------------------------------------------------------------------------------------------------
# Lambda function
# ---------------------------------------------------------------------------------------------------

variable "lambda_zip_path" {
  description = "Path to the deployment package: a zip holding the `bootstrap` executable (scripts/package-lambda writes dist/bootstrap.zip). Its hash is tracked, so a new zip redeploys the function."
  type        = string

  validation {
    condition     = fileexists(var.lambda_zip_path)
    error_message = "lambda_zip_path must point to an existing zip file containing `bootstrap`; build it with scripts/package-lambda (it writes dist/bootstrap.zip)."
  }
}

variable "lambda_architecture" {
  description = "Instruction set of the function. arm64 (Graviton) is cheaper per GB-second; the package must be built for the same architecture."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "lambda_memory_mb" {
  description = "Memory of the function in MB (CPU scales with it)."
  type        = number
  default     = 3072

  validation {
    condition     = var.lambda_memory_mb >= 128 && var.lambda_memory_mb <= 10240 && floor(var.lambda_memory_mb) == var.lambda_memory_mb
    error_message = "lambda_memory_mb must be a whole number between 128 and 10240."
  }
}

variable "lambda_timeout_seconds" {
  description = "Function timeout in seconds. The queue's visibility timeout is derived from it (6x, as AWS recommends for SQS event sources)."
  type        = number
  default     = 60

  validation {
    condition     = var.lambda_timeout_seconds >= 1 && var.lambda_timeout_seconds <= 900 && floor(var.lambda_timeout_seconds) == var.lambda_timeout_seconds
    error_message = "lambda_timeout_seconds must be a whole number between 1 and 900."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions of the function: a hard cap on parallel invocations (cost and downstream-load guard)."
  type        = number
  default     = 5

  validation {
    condition     = var.reserved_concurrency >= 1 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be a whole number of at least 1 (0 would stop the function from running at all)."
  }
}

variable "log_level" {
  description = "LOG_LEVEL passed to the function."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["trace", "debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be one of trace, debug, info, warn, error."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's CloudWatch log group, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

# ---------------------------------------------------------------------------------------------------
# Alert rules (passed to the function as environment variables)
# ---------------------------------------------------------------------------------------------------

variable "high_threshold" {
  description = "HIGH_THRESHOLD: a price above it raises a high alert (unless RULES overrides it for the symbol)."
  type        = number
  default     = 150

  validation {
    condition     = var.high_threshold > 0
    error_message = "high_threshold must be greater than 0."
  }
}

variable "low_threshold" {
  description = "LOW_THRESHOLD: a price below it raises a low alert. Must be lower than high_threshold."
  type        = number
  default     = 50

  validation {
    condition     = var.low_threshold >= 0 && var.low_threshold < var.high_threshold
    error_message = "low_threshold must be at least 0 and strictly lower than high_threshold."
  }
}

variable "alert_mode" {
  description = "ALERT_MODE: \"cross\" alerts when a symbol enters the high or low zone (needs the zone it was in, kept in the state table); \"level\" alerts on every price beyond a threshold."
  type        = string
  default     = "cross"

  validation {
    condition     = contains(["cross", "level"], var.alert_mode)
    error_message = "alert_mode must be \"cross\" or \"level\"."
  }
}

variable "hysteresis" {
  description = "HYSTERESIS: in cross mode, how far back inside the band (below high_threshold, above low_threshold) a price must come before its symbol re-arms and can alert again. 0 re-arms as soon as the price is back inside."
  type        = number
  default     = 0

  validation {
    # Refers to other variables (Terraform >= 1.9): the function refuses a hysteresis that leaves
    # no room to re-arm, so the plan does too.
    condition     = var.hysteresis >= 0 && var.hysteresis < var.high_threshold - var.low_threshold
    error_message = "hysteresis must be at least 0 and smaller than high_threshold - low_threshold (the width of the band)."
  }
}

variable "rules" {
  description = "RULES: optional JSON object of per-symbol overrides of the rule above, e.g. {\"AAPL\":{\"high\":200,\"low\":120},\"BRK.B\":{\"mode\":\"level\"}}; each may set high, low, mode and hysteresis, and the rest is inherited. Empty string means none, and the variable is then not set on the function."
  type        = string
  default     = ""

  validation {
    condition = var.rules == "" || (
      can(keys(jsondecode(var.rules))) &&
      alltrue([
        for symbol, rule in try(jsondecode(var.rules), {}) :
        can(keys(rule)) && alltrue([for key in try(keys(rule), []) : contains(["high", "low", "mode", "hysteresis"], key)])
      ])
    )
    error_message = "rules must be \"\" or a JSON object mapping symbols to objects with optional \"high\", \"low\", \"mode\" and \"hysteresis\", e.g. {\"AAPL\":{\"high\":200,\"low\":120}}."
  }
}

variable "rules_refresh_seconds" {
  description = "RULES_REFRESH_SECONDS: how often, in seconds, the function (and `tickwatch sqs-worker`) re-reads the rules table (RULES_TABLE), so a rule the CLI writes takes effect within this time. Lower is fresher but reads the table more often."
  type        = number
  default     = 10

  validation {
    condition     = var.rules_refresh_seconds >= 1 && var.rules_refresh_seconds <= 3600 && floor(var.rules_refresh_seconds) == var.rules_refresh_seconds
    error_message = "rules_refresh_seconds must be a whole number of seconds between 1 and 3600 (how often the rules table is re-read)."
  }
}

# ---------------------------------------------------------------------------------------------------
# Queue and event source mapping
# ---------------------------------------------------------------------------------------------------

variable "batch_size" {
  description = "Maximum number of ticks handed to one invocation."
  type        = number
  default     = 25

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000 && floor(var.batch_size) == var.batch_size
    error_message = "batch_size must be a whole number between 1 and 10000 (the SQS event source limit)."
  }
}

variable "maximum_batching_window_seconds" {
  description = "How long the event source mapping may wait to fill a batch. AWS requires at least 1 when batch_size is above 10."
  type        = number
  default     = 1

  validation {
    condition     = var.maximum_batching_window_seconds >= 0 && var.maximum_batching_window_seconds <= 300 && floor(var.maximum_batching_window_seconds) == var.maximum_batching_window_seconds
    error_message = "maximum_batching_window_seconds must be a whole number between 0 and 300."
  }

  validation {
    condition     = var.batch_size <= 10 || var.maximum_batching_window_seconds >= 1
    error_message = "maximum_batching_window_seconds must be at least 1 when batch_size is above 10 (an AWS rule for SQS event sources)."
  }
}

variable "maximum_concurrency" {
  description = "Maximum concurrent invocations the SQS event source may drive. Keep it at or below reserved_concurrency, or the poller is throttled and messages bounce back to the queue."
  type        = number
  default     = 5

  validation {
    condition     = var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000 && floor(var.maximum_concurrency) == var.maximum_concurrency
    error_message = "maximum_concurrency must be a whole number between 2 and 1000 (the SQS event source limits)."
  }

  validation {
    condition     = var.maximum_concurrency <= var.reserved_concurrency
    error_message = "maximum_concurrency must not exceed reserved_concurrency: extra pollers would only be throttled."
  }
}

variable "max_receive_count" {
  description = "Receives after which a tick moves to the dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number between 1 and 1000."
  }
}

# ---------------------------------------------------------------------------------------------------
# Notifications and alarms
# ---------------------------------------------------------------------------------------------------

variable "alert_subscriptions" {
  description = <<-EOT
    Subscriptions to the alerts topic. Each has a protocol and an endpoint, and may have a
    filter_policy on the alerts' message attributes (symbol, kind), so a team gets only what it
    needs, e.g. { symbol = ["AAPL", "MSFT"], kind = ["HIGH"] } (exact values; a subscriber gets
    an alert when every named attribute matches one of its values). An email subscription stays
    pending until confirmed.
  EOT
  type = list(object({
    protocol      = string
    endpoint      = string
    filter_policy = optional(map(list(string)))
  }))
  default = []

  validation {
    condition = alltrue([
      for s in var.alert_subscriptions :
      contains(["email", "email-json", "http", "https", "sqs", "lambda", "sms", "application", "firehose"], s.protocol) && length(s.endpoint) > 0
    ])
    error_message = "Each alert subscription needs a protocol among email, email-json, http, https, sqs, lambda, sms, application, firehose, and a non-empty endpoint."
  }

  validation {
    condition     = length(distinct([for s in var.alert_subscriptions : "${s.protocol}:${s.endpoint}"])) == length(var.alert_subscriptions)
    error_message = "alert_subscriptions must not contain the same protocol and endpoint twice."
  }

  validation {
    condition = alltrue([
      for s in var.alert_subscriptions : s.filter_policy == null ? true : alltrue([
        for attribute, values in s.filter_policy :
        contains(["symbol", "kind", "alert_id"], attribute) && length(values) > 0
      ])
    ])
    error_message = "A filter_policy may name the message attributes symbol, kind and alert_id, each with at least one value."
  }
}

variable "alarm_action_arns" {
  description = "ARNs notified when an alarm fires and when it recovers (alarm_actions and ok_actions), e.g. an SNS topic of the on-call team. Empty means the alarms only change state."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.alarm_action_arns : startswith(arn, "arn:")])
    error_message = "alarm_action_arns must be a list of ARNs (strings starting with \"arn:\")."
  }
}

variable "error_rate_threshold_percent" {
  description = "The error-rate alarm fires when 100 * Errors / Invocations over 5 minutes is above this."
  type        = number
  default     = 1

  validation {
    condition     = var.error_rate_threshold_percent > 0 && var.error_rate_threshold_percent < 100
    error_message = "error_rate_threshold_percent must be between 0 and 100, exclusive."
  }
}

variable "oldest_tick_age_threshold_seconds" {
  description = "The oldest-tick-age alarm fires when the oldest tick in the queue is older than this (the function is falling behind or failing)."
  type        = number
  default     = 300

  validation {
    condition     = var.oldest_tick_age_threshold_seconds >= 1 && var.oldest_tick_age_threshold_seconds <= 1209600
    error_message = "oldest_tick_age_threshold_seconds must be between 1 and 1209600 (the queue's retention)."
  }
}

variable "dashboard_enabled" {
  description = "Create the CloudWatch dashboard tickwatch-<suffix> (throughput, rejections by reason, failures, queue and dead-letter depth, function duration, errors, throttles, concurrency)."
  type        = bool
  default     = true
}

variable "worker_role_services" {
  description = "AWS services that may assume an IAM role for `tickwatch sqs-worker` (ec2.amazonaws.com, ecs-tasks.amazonaws.com), with the same least privilege as the function minus its log group. Empty (the default) creates no role."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.worker_role_services : contains(["ec2.amazonaws.com", "ecs-tasks.amazonaws.com"], s)])
    error_message = "worker_role_services may contain ec2.amazonaws.com and ecs-tasks.amazonaws.com."
  }
}
