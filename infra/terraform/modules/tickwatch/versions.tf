terraform {
  # 1.9+ for cross-variable validation; 1.11 is what CI runs and what the S3 backend's native
  # locking (use_lockfile) needs in the example root.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.80 is the first release with every argument used here (tags on event source mappings,
      # scaling_config, logging_config); 6.x keeps them all.
      version = ">= 5.80, < 7.0"
    }
  }
}
