# An optional role for `tickwatch sqs-worker` on EC2 or ECS: the function's own least privilege
# (its policy, minus the log group the function writes), assumable by the services named in
# worker_role_services. The worker logs to stdout; the host or the task's log driver ships that.

locals {
  worker_role_enabled = length(var.worker_role_services) > 0

  worker_policy = {
    Version   = "2012-10-17"
    Statement = [for s in local.processor_policy.Statement : s if s.Sid != "WriteLogs"]
  }
}

resource "aws_iam_role" "worker" {
  count       = local.worker_role_enabled ? 1 : 0
  name        = local.names.worker_role
  description = "tickwatch sqs-worker for the ${local.suffix} stack"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "WorkerHostsAssumeRole"
      Effect    = "Allow"
      Principal = { Service = var.worker_role_services }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "worker" {
  count  = local.worker_role_enabled ? 1 : 0
  name   = local.names.worker_role
  role   = aws_iam_role.worker[0].id
  policy = jsonencode(local.worker_policy)
}

# EC2 attaches roles through an instance profile.
resource "aws_iam_instance_profile" "worker" {
  count = contains(var.worker_role_services, "ec2.amazonaws.com") ? 1 : 0
  name  = local.names.worker_role
  role  = aws_iam_role.worker[0].name
  tags  = local.tags
}
