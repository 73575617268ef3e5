terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
  }

  # State is local unless you copy backend.tf.example to backend.tf (see README.md). CI applies this
  # root with local state in a temporary directory.
}
