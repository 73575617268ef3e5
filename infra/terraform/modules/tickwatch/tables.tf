# Alerts raised (one item per alert), per-symbol state for cross mode: the zone the symbol is in
# (low, normal or high), since when, and the time of the newest tick seen, which is the
# compare-and-set version that makes older ticks stale (no price is kept; see
# crates/aws/src/dynamo.rs), and the alert rules (one item per rule, written by the CLI and only
# read by the function, every RULES_REFRESH_SECONDS). All on-demand, with point-in-time recovery,
# encrypted with the stack's key, and deletable with the stack.

resource "aws_dynamodb_table" "alerts" {
  name                        = local.names.alerts_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "symbol"
  range_key                   = "timestamp"
  deletion_protection_enabled = false

  attribute {
    name = "symbol"
    type = "S"
  }

  attribute {
    name = "timestamp"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }

  tags = local.tags
}

resource "aws_dynamodb_table" "state" {
  name                        = local.names.state_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "symbol"
  deletion_protection_enabled = false

  attribute {
    name = "symbol"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }

  tags = local.tags
}

resource "aws_dynamodb_table" "rules" {
  name                        = local.names.rules_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "rule_id"
  deletion_protection_enabled = false

  attribute {
    name = "rule_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }

  tags = local.tags
}
