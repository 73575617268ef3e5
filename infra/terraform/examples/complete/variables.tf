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

  validation {
    condition     = length(var.environment_suffix) > 0
    error_message = "environment_suffix must not be empty."
  }
}

variable "environment" {
  description = "Environment tag; null uses environment_suffix."
  type        = string
  default     = null

  validation {
    condition     = var.environment == null || can(regex("^.{1,256}$", var.environment))
    error_message = "environment must be null or a non-empty string of at most 256 characters."
  }
}

variable "team" {
  description = "Team tag."
  type        = string
  default     = "market-data"

  validation {
    condition     = length(trimspace(var.team)) > 0
    error_message = "team must not be blank."
  }
}

variable "cost_center" {
  description = "CostCenter tag."
  type        = string
  default     = "trading-platform"

  validation {
    condition     = length(trimspace(var.cost_center)) > 0
    error_message = "cost_center must not be blank."
  }
}

variable "lambda_zip_path" {
  description = "Deployment package built by scripts/package-lambda. Relative paths are relative to the directory Terraform runs in (this one)."
  type        = string
  default     = "../../../../dist/bootstrap.zip"

  validation {
    condition     = endswith(var.lambda_zip_path, ".zip")
    error_message = "lambda_zip_path must be the path of a .zip file (run scripts/package-lambda to build dist/bootstrap.zip)."
  }
}

variable "lambda_architecture" {
  description = "Architecture the package was built for: arm64 (scripts/package-lambda) or x86_64 (scripts/package-lambda --x86-64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "high_threshold" {
  description = "HIGH_THRESHOLD: prices above it alert HIGH. The module validates it."
  type        = number
  default     = 150

  validation {
    condition     = var.high_threshold > 0
    error_message = "high_threshold must be greater than 0."
  }
}

variable "low_threshold" {
  description = "LOW_THRESHOLD: prices below it alert LOW. The module validates it (below high_threshold)."
  type        = number
  default     = 50

  validation {
    condition     = var.low_threshold >= 0
    error_message = "low_threshold must be at least 0."
  }
}

variable "alert_mode" {
  description = "ALERT_MODE: \"cross\" (alert on entering a zone) or \"level\" (every tick beyond). The module validates it."
  type        = string
  default     = "cross"

  validation {
    condition     = contains(["cross", "level"], var.alert_mode)
    error_message = "alert_mode must be \"cross\" or \"level\"."
  }
}

variable "hysteresis" {
  description = "HYSTERESIS: in cross mode, how far back inside the band a price must come before its symbol re-arms. The module validates it (at least 0, below high_threshold - low_threshold)."
  type        = number
  default     = 0

  validation {
    condition     = var.hysteresis >= 0
    error_message = "hysteresis must be at least 0."
  }
}

variable "rules" {
  description = "RULES: JSON per-symbol overrides, e.g. {\"AAPL\":{\"high\":200,\"low\":120}}; \"\" for none. The module validates it."
  type        = string
  default     = ""

  validation {
    condition     = var.rules == "" || can(keys(jsondecode(var.rules)))
    error_message = "rules must be \"\" or a JSON object."
  }
}

variable "alert_subscriptions" {
  description = "Subscriptions to the alerts topic, e.g. [{ protocol = \"email\", endpoint = \"oncall@example.com\" }]."
  type = list(object({
    protocol = string
    endpoint = string
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.alert_subscriptions : length(s.endpoint) > 0])
    error_message = "Every subscription needs an endpoint."
  }
}

variable "alarm_action_arns" {
  description = "ARNs notified when an alarm fires or recovers, e.g. the on-call SNS topic."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.alarm_action_arns : startswith(arn, "arn:")])
    error_message = "alarm_action_arns must be ARNs."
  }
}
