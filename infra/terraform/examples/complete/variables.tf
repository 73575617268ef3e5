# The example passes these straight to the module, which validates each of them (one set of
# rules, in one place); only aws_region belongs to the example itself.

variable "aws_region" {
  description = "Region to deploy into."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region name such as us-east-1."
  }
}

variable "environment_suffix" {
  description = "Suffix of every resource name (tickwatch-<what>-<suffix>), e.g. dev or pr123. The module validates it."
  type        = string
  default     = "dev"
}

variable "environment" {
  description = "Environment tag; null uses environment_suffix."
  type        = string
  default     = null
}

variable "team" {
  description = "Team tag."
  type        = string
  default     = "market-data"
}

variable "cost_center" {
  description = "CostCenter tag."
  type        = string
  default     = "trading-platform"
}

variable "lambda_zip_path" {
  description = "Deployment package built by scripts/package-lambda. Relative paths are relative to the directory Terraform runs in (this one)."
  type        = string
  default     = "../../../../dist/bootstrap.zip"
}

variable "lambda_architecture" {
  description = "Architecture the package was built for: arm64 (scripts/package-lambda) or x86_64 (scripts/package-lambda --x86-64)."
  type        = string
  default     = "arm64"
}

variable "high_threshold" {
  description = "HIGH_THRESHOLD: prices above it alert HIGH. The module validates it."
  type        = number
  default     = 150
}

variable "low_threshold" {
  description = "LOW_THRESHOLD: prices below it alert LOW. The module validates it (below high_threshold)."
  type        = number
  default     = 50
}

variable "alert_mode" {
  description = "ALERT_MODE: \"cross\" (alert on entering a zone) or \"level\" (every tick beyond). The module validates it."
  type        = string
  default     = "cross"
}

variable "hysteresis" {
  description = "HYSTERESIS: in cross mode, how far back inside the band a price must come before its symbol re-arms. The module validates it (at least 0, below high_threshold - low_threshold)."
  type        = number
  default     = 0
}

variable "rules" {
  description = "RULES: JSON per-symbol overrides, e.g. {\"AAPL\":{\"high\":200,\"low\":120}}; \"\" for none. The module validates it."
  type        = string
  default     = ""
}

variable "rules_refresh_seconds" {
  description = "RULES_REFRESH_SECONDS: how often the function re-reads the rules table (RULES_TABLE). The module validates it (a whole number, 1-3600)."
  type        = number
  default     = 10
}

variable "alert_subscriptions" {
  description = "Subscriptions to the alerts topic, each with an optional filter_policy on symbol and kind (see the module's README)."
  type = list(object({
    protocol      = string
    endpoint      = string
    filter_policy = optional(map(list(string)))
  }))
  default = []
}

variable "dashboard_enabled" {
  description = "Create the CloudWatch dashboard."
  type        = bool
  default     = true
}

variable "worker_role_services" {
  description = "Services that may assume a role for tickwatch sqs-worker (ec2.amazonaws.com, ecs-tasks.amazonaws.com); empty for none."
  type        = list(string)
  default     = []
}

variable "alarm_action_arns" {
  description = "ARNs notified when an alarm fires or recovers, e.g. the on-call SNS topic."
  type        = list(string)
  default     = []
}
