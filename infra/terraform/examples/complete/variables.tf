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
