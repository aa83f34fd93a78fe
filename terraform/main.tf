# Everything the functions need that Zappa does not create: the tables, the
# schedule group, the role EventBridge Scheduler assumes, its dead-letter
# queue, the functions' execution roles and their log groups. Zappa creates
# the functions and API Gateway (manage_roles: false, role ARNs from outputs).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  prefix     = "${var.name_prefix}-${var.stage}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # The names Zappa gives the functions: slugify("<project_name>-<stage>"),
  # so the executor stage "<stage>_executor" becomes "<prefix>-executor".
  web_function_name      = local.prefix
  executor_function_name = "${local.prefix}-executor"
  executor_function_arn  = "arn:${local.partition}:lambda:${var.region}:${local.account_id}:function:${local.executor_function_name}"

  # Every schedule the app makes lives in this group (see tasks/scheduler.py).
  schedule_arn_pattern = "arn:${local.partition}:scheduler:${var.region}:${local.account_id}:schedule/${aws_scheduler_schedule_group.tasks.name}/*"

  deletion_protection = var.deletion_protection != null ? var.deletion_protection : var.stage == "prod"
}
