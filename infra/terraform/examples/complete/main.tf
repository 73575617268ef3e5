# A complete tickwatch deployment: the module with its defaults (the specified settings), tagged for
# one environment.

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

  alert_subscriptions = var.alert_subscriptions
  alarm_action_arns   = var.alarm_action_arns
}
