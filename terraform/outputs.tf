# What zappa_settings.json and the functions' environment need (README:
# "Infrastructure"). Names match the environment variables they feed.

output "region" {
  description = "AWS_REGION / Zappa aws_region of both stages."
  value       = var.region
}

output "web_role_arn" {
  description = "Zappa role_arn of the web stage (<stage>)."
  value       = aws_iam_role.web.arn
}

output "executor_role_arn" {
  description = "Zappa role_arn of the executor stage (<stage>_executor)."
  value       = aws_iam_role.executor.arn
}

output "scheduler_role_arn" {
  description = "SCHEDULER_ROLE_ARN: the role EventBridge Scheduler assumes to invoke the executor."
  value       = aws_iam_role.scheduler.arn
}

output "web_function_name" {
  description = "The web function's name as Zappa derives it; the roles and log groups are scoped to it."
  value       = local.web_function_name
}

output "executor_function_name" {
  description = "The executor function's name as Zappa derives it."
  value       = local.executor_function_name
}

output "executor_function_arn" {
  description = "EXECUTOR_FUNCTION_ARN: constructed from the name Zappa gives the executor (it exists once the executor stage is deployed)."
  value       = local.executor_function_arn
}

output "table_prefix" {
  description = "SCHEDULER_TABLE_PREFIX: the tables are <prefix>-tasks, <prefix>-api-keys, <prefix>-operators, <prefix>-schedules."
  value       = local.prefix
}

output "tasks_table_name" {
  description = "TASKS_TABLE."
  value       = aws_dynamodb_table.tasks.name
}

output "tasks_table_arn" {
  description = "The tasks table."
  value       = aws_dynamodb_table.tasks.arn
}

output "api_keys_table_name" {
  description = "API_KEYS_TABLE."
  value       = aws_dynamodb_table.api_keys.name
}

output "api_keys_table_arn" {
  description = "The API keys table."
  value       = aws_dynamodb_table.api_keys.arn
}

output "operators_table_name" {
  description = "OPERATORS_TABLE."
  value       = aws_dynamodb_table.operators.name
}

output "operators_table_arn" {
  description = "The dashboard operators table."
  value       = aws_dynamodb_table.operators.arn
}

output "schedules_table_name" {
  description = "SCHEDULES_TABLE."
  value       = aws_dynamodb_table.schedules.name
}

output "schedules_table_arn" {
  description = "The recurring schedules table."
  value       = aws_dynamodb_table.schedules.arn
}

output "schedule_group_name" {
  description = "SCHEDULER_GROUP_NAME."
  value       = aws_scheduler_schedule_group.tasks.name
}

output "schedule_group_arn" {
  description = "The schedule group."
  value       = aws_scheduler_schedule_group.tasks.arn
}

output "dlq_arn" {
  description = "SCHEDULER_DLQ_ARN: where EventBridge Scheduler puts invocations it gave up on."
  value       = aws_sqs_queue.scheduler_dlq.arn
}

output "dlq_url" {
  description = "The dead-letter queue's URL, to read it (aws sqs receive-message --queue-url ...)."
  value       = aws_sqs_queue.scheduler_dlq.url
}

output "hop_queue_arn" {
  description = "The hop queue: the executor stage's SQS event source (make deploy sets it)."
  value       = aws_sqs_queue.hop.arn
}

output "hop_queue_url" {
  description = "TASK_QUEUE_URL: the hop queue the web function and the executor send to."
  value       = aws_sqs_queue.hop.url
}

output "zappa_environment_variables" {
  description = "The environment both Zappa stages need from this stack (merge into aws_environment_variables; Lambda sets AWS_REGION itself)."
  value = {
    SCHEDULER_TABLE_PREFIX = local.prefix
    TASKS_TABLE            = aws_dynamodb_table.tasks.name
    API_KEYS_TABLE         = aws_dynamodb_table.api_keys.name
    OPERATORS_TABLE        = aws_dynamodb_table.operators.name
    SCHEDULES_TABLE        = aws_dynamodb_table.schedules.name
    SCHEDULER_GROUP_NAME   = aws_scheduler_schedule_group.tasks.name
    EXECUTOR_FUNCTION_ARN  = local.executor_function_arn
    SCHEDULER_ROLE_ARN     = aws_iam_role.scheduler.arn
    SCHEDULER_DLQ_ARN      = aws_sqs_queue.scheduler_dlq.arn
    TASK_QUEUE_URL         = aws_sqs_queue.hop.url
  }
}
