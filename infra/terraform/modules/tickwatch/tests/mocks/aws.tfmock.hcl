# The mocked AWS provider every test file of the module uses (mock_provider "aws" { source = ... }):
# data sources that describe the account, and ARNs shaped like real ones, because the provider
# validates ARN arguments even when mocked.

mock_data "aws_caller_identity" {
  defaults = { account_id = "123456789012" }
}
mock_data "aws_region" {
  defaults = { name = "us-east-1" }
}
mock_data "aws_partition" {
  defaults = { partition = "aws" }
}

# The provider validates ARN arguments even when mocked, so computed ARNs must look like ARNs.
mock_resource "aws_kms_key" {
  defaults = {
    arn    = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001"
    key_id = "00000000-0000-0000-0000-000000000001"
  }
}
mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:us-east-1:123456789012:tickwatch-ticks-unit"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/tickwatch-ticks-unit"
  }
}
mock_resource "aws_dynamodb_table" {
  defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/tickwatch-alerts-unit" }
}
mock_resource "aws_sns_topic" {
  defaults = { arn = "arn:aws:sns:us-east-1:123456789012:tickwatch-alerts-unit" }
}
mock_resource "aws_iam_role" {
  defaults = { arn = "arn:aws:iam::123456789012:role/tickwatch-processor-unit" }
}
mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/tickwatch-processor-unit" }
}
mock_resource "aws_lambda_function" {
  defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:tickwatch-processor-unit" }
}
