# Alerts raised (one item per alert) and per-symbol state for cross mode: the zone the symbol is in
# (low, normal or high), since when, and the time of the newest tick seen, which is the
# compare-and-set version that makes older ticks stale (no price is kept; see
# crates/aws/src/dynamo.rs). Both on-demand, with point-in-time recovery, encrypted with the
# stack's key, and deletable with the stack.

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
