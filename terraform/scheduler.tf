# The group every task's one-time schedule is created in, and the
# dead-letter queue of both halves of an invocation: EventBridge Scheduler
# puts one there when it gives up delivering it to Lambda (after
# SCHEDULER_MAX_RETRY_ATTEMPTS / SCHEDULER_MAX_EVENT_AGE_SECONDS), and Lambda
# when the executor failed it and its own two retries (the function's
# DeadLetterConfig).

resource "aws_scheduler_schedule_group" "tasks" {
  name = local.prefix
}

resource "aws_sqs_queue" "scheduler_dlq" {
  name = "${local.prefix}-scheduler-dlq"
  # The longest SQS allows: time to look at what never reached the executor.
  message_retention_seconds = 1209600
  # Encrypted with SQS's own key (SSE-SQS): EventBridge Scheduler can send to
  # it without a KMS key policy or kms:* permissions on its role.
  sqs_managed_sse_enabled = true
}

data "aws_iam_policy_document" "scheduler_dlq" {
  # Nobody, whatever their IAM policy says, reaches the queue without TLS.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.scheduler_dlq.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "scheduler_dlq" {
  queue_url = aws_sqs_queue.scheduler_dlq.id
  policy    = data.aws_iam_policy_document.scheduler_dlq.json
}

# A message in the dead-letter queue is a task whose executor never ran or
# never finished: say so instead of waiting for someone to look.
resource "aws_cloudwatch_metric_alarm" "scheduler_dlq_not_empty" {
  alarm_name          = "${local.prefix}-scheduler-dlq-not-empty"
  alarm_description   = "The executor was not invoked for some task, or failed it after its retries; see the queue ${aws_sqs_queue.scheduler_dlq.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.scheduler_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

# Every 5 minutes the executor repairs what a fault left behind
# (tasks.executor.reconcile, see docs/infrastructure.md for its cost): a
# scheduled task without its schedule gets it back, orphan schedules are
# deleted, stuck tasks are logged. In the tasks' group, so the scheduler
# role's trust (this group only) covers it; its name is not a task's
# schedule name, so reconcile leaves it alone.
resource "aws_scheduler_schedule" "reconcile" {
  # checkov:skip=CKV_AWS_297:The schedule's input is a fixed command name with no data in it; EventBridge Scheduler encrypts it with an AWS owned key already, and a customer managed key would cost per month and need a key policy for the scheduler.
  name                = "${local.prefix}-reconcile"
  group_name          = aws_scheduler_schedule_group.tasks.name
  description         = "Repairs tasks and schedules a fault left behind (tasks.executor.reconcile)."
  schedule_expression = "rate(5 minutes)"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = local.executor_function_arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ command = "tasks.executor.reconcile" })

    # A missed run is made up by the next one, 5 minutes later.
    retry_policy {
      maximum_retry_attempts = 0
    }
  }
}
