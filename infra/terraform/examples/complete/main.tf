# A complete tickwatch deployment: the module with its defaults (the specified settings), tagged for
# one environment; the alert rules can be changed here.

provider "aws" {
  region = var.aws_region

  # Added to every taggable resource on top of the module's Environment, Team and CostCenter tags.
  default_tags {
    tags = {
      Project   = "tickwatch"
      ManagedBy = "terraform"
    }
  }
}

module "tickwatch" {
  source = "../../modules/tickwatch"

  environment_suffix = var.environment_suffix
  environment        = var.environment
  team               = var.team
  cost_center        = var.cost_center
  lambda_zip_path    = var.lambda_zip_path

  lambda_architecture = var.lambda_architecture

  # The alert rules, as the function's HIGH_THRESHOLD, LOW_THRESHOLD, ALERT_MODE, HYSTERESIS,
  # RULES and RULES_REFRESH_SECONDS (the same variables `tickwatch sqs-worker` reads).
  high_threshold        = var.high_threshold
  low_threshold         = var.low_threshold
  alert_mode            = var.alert_mode
  hysteresis            = var.hysteresis
  rules                 = var.rules
  rules_refresh_seconds = var.rules_refresh_seconds

  alert_subscriptions  = var.alert_subscriptions
  alarm_action_arns    = var.alarm_action_arns
  dashboard_enabled    = var.dashboard_enabled
  worker_role_services = var.worker_role_services
}
