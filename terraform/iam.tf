# Three roles, each allowed exactly the calls its code makes (listed in the
# README, checked by tests/test_terraform.py against the calls the code makes
# under moto). No statement allows "*" or a service-wide wildcard, and none
# has Resource "*".

# --- EventBridge Scheduler -> executor ---------------------------------------

data "aws_iam_policy_document" "scheduler_trust" {
  statement {
    sid     = "EventBridgeSchedulerOfThisAccountAndGroup"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    # Confused-deputy guard: only schedules of this account, in this group.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_scheduler_schedule_group.tasks.arn]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeTheExecutor"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.executor_function_arn]
  }

  # EventBridge Scheduler sends to the dead-letter queue with this role.
  statement {
    sid       = "SendToTheDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.scheduler_dlq.arn]
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${local.prefix}-scheduler"
  description        = "Assumed by EventBridge Scheduler to invoke the executor of ${local.prefix}."
  assume_role_policy = data.aws_iam_policy_document.scheduler_trust.json
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "invoke-executor"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

# --- web function (API and dashboard) ----------------------------------------

data "aws_iam_policy_document" "web_trust" {
  statement {
    sid     = "Lambda"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }

  # Only Lambda: the web stages are reached by a function URL (auth NONE),
  # which Lambda authorises by the function's resource policy, not by this
  # role. Zappa's API Gateway integration would invoke the function with this
  # role (apigateway.amazonaws.com here and lambda:InvokeFunction on the web
  # function below); no stage uses it (apigateway_enabled: false), so
  # neither is granted.
}

data "aws_iam_policy_document" "web" {
  statement {
    sid       = "Tasks"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"]
    resources = [aws_dynamodb_table.tasks.arn]
  }

  # Listing is Queries on the indexes, never on the table.
  statement {
    sid     = "TaskIndexes"
    actions = ["dynamodb:Query"]
    resources = [
      "${aws_dynamodb_table.tasks.arn}/index/due-due_at-index",
      "${aws_dynamodb_table.tasks.arn}/index/listing-created_at-index",
      "${aws_dynamodb_table.tasks.arn}/index/schedule_id-occurrence_at-index",
    ]
  }

  # Recurring schedules: create, read, change (pause, resume), delete, list.
  statement {
    sid = "RecurringSchedules"
    actions = [
      "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.schedules.arn]
  }

  statement {
    sid       = "RecurringScheduleIndexes"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.schedules.arn}/index/listing-created_at-index"]
  }

  # Authenticating a request is one GetItem; the dashboard creates, lists
  # (Scan of a table of a handful of keys) and revokes keys.
  statement {
    sid       = "ApiKeys"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan"]
    resources = [aws_dynamodb_table.api_keys.arn]
  }

  # Dashboard logins: read, count failures and lock (UpdateItem), add.
  statement {
    sid       = "Operators"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.operators.arn]
  }

  # Create a task's schedule; delete it on cancel and run-now. A recurring
  # schedule's is created, replaced whole (UpdateSchedule: a change, pause,
  # resume) and deleted.
  statement {
    sid       = "Schedules"
    actions   = ["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"]
    resources = [local.schedule_arn_pattern]
  }

  # CreateSchedule names the scheduler role as the schedule's role.
  statement {
    sid       = "PassTheSchedulerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.scheduler.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["scheduler.amazonaws.com"]
    }
  }

  # A task due within about two minutes goes to the hop queue directly.
  statement {
    sid       = "HopQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.hop.arn]
  }

  # The Dead letters page and API: find the queue, read it (received
  # messages are released again at once), count it, delete what was
  # replayed or discarded.
  statement {
    sid = "DeadLetters"
    actions = [
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:DeleteMessage",
    ]
    resources = [aws_sqs_queue.scheduler_dlq.arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.web.arn}:*"]
  }
}

resource "aws_iam_role" "web" {
  name               = "${local.prefix}-web"
  description        = "Execution role of the ${local.prefix} web function (API and dashboard)."
  assume_role_policy = data.aws_iam_policy_document.web_trust.json
}

resource "aws_iam_role_policy" "web" {
  name   = "web"
  role   = aws_iam_role.web.id
  policy = data.aws_iam_policy_document.web.json
}

# --- executor function ---------------------------------------------------------

data "aws_iam_policy_document" "executor_trust" {
  statement {
    sid     = "Lambda"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "executor" {
  # Claim (a conditional UpdateItem that returns the task), record the
  # attempt, mark a task whose retry could not be scheduled failed; and, only
  # when a claim fails, read whether the task is running (GetItem; reconcile
  # too, before it deletes a schedule that looks orphaned). A recurring
  # schedule's occurrence is a conditional PutItem.
  statement {
    sid       = "Tasks"
    actions   = ["dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchGetItem"]
    resources = [aws_dynamodb_table.tasks.arn]
  }

  # A recurring schedule's delivery reads the schedule (its action, payload
  # and state) before making the occurrence.
  statement {
    sid       = "RecurringSchedules"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.schedules.arn]
  }

  # A retryable failure gets a new one-time schedule; fired schedules delete
  # themselves (ActionAfterCompletion DELETE). Reconcile (every 5 minutes)
  # makes a lost schedule again and deletes orphan ones.
  statement {
    sid       = "Schedules"
    actions   = ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"]
    resources = [local.schedule_arn_pattern]
  }

  # Reconcile lists the group's schedules (the GroupName parameter scopes
  # what it returns; see RESOURCE_STAR_JUSTIFIED in tests/test_terraform.py).
  statement {
    sid       = "ListSchedules"
    actions   = ["scheduler:ListSchedules"]
    resources = ["*"]
  }

  # Reconcile reads the tasks due from its window on (the due index).
  statement {
    sid       = "TaskIndexes"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.tasks.arn}/index/due-due_at-index"]
  }

  statement {
    sid       = "PassTheSchedulerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.scheduler.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["scheduler.amazonaws.com"]
    }
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.executor.arn}:*"]
  }

  # EventBridge Scheduler invokes the executor asynchronously: an invocation
  # that fails (an ExecutorError, a timeout) is retried by Lambda, twice, and
  # then Lambda sends it to the function's dead-letter queue with this role
  # (the executor's DeadLetterConfig, which make deploy sets to this queue).
  statement {
    sid       = "DeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.scheduler_dlq.arn]
  }

  # The hop: an early delivery sends its task to the hop queue, delayed to
  # arrive just before its second.
  statement {
    sid       = "HopQueueSend"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.hop.arn]
  }

  # The hop queue's event source polls with the function's role.
  statement {
    sid       = "HopQueueEventSource"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.hop.arn]
  }
}

resource "aws_iam_role" "executor" {
  name               = "${local.prefix}-executor"
  description        = "Execution role of the ${local.prefix} executor function."
  assume_role_policy = data.aws_iam_policy_document.executor_trust.json
}

resource "aws_iam_role_policy" "executor" {
  name   = "executor"
  role   = aws_iam_role.executor.id
  policy = data.aws_iam_policy_document.executor.json
}
