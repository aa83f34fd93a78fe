# The functions' log groups, made here rather than by Lambda on first use so
# that they have a retention and the roles need no logs:CreateLogGroup.

resource "aws_cloudwatch_log_group" "web" {
  # checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest already; a customer managed key would cost per month and the app logs no secrets (API keys, the signing secret and webhook headers are never logged).
  # checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (30 days by default): a year of request logs is a cost to choose, not a default.
  name              = "/aws/lambda/${local.web_function_name}"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "executor" {
  # checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest already; a customer managed key would cost per month and the app logs no secrets (API keys, the signing secret and webhook headers are never logged).
  # checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (30 days by default): a year of execution logs is a cost to choose, not a default.
  name              = "/aws/lambda/${local.executor_function_name}"
  retention_in_days = var.log_retention_days
}
