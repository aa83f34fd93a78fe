# The hop queue. EventBridge Scheduler fires a task's one-time schedule in
# the minute before the task's minute (its precision is 60 s); the executor
# then sends the task here with DelaySeconds, so that the message becomes
# visible just before the task's second, and this queue's Lambda event source
# (created by Zappa from the executor stage's `events`) invokes the executor
# again to claim and send it. A task due within about two minutes is sent
# here by the web function directly.

resource "aws_sqs_queue" "hop" {
  name = "${local.prefix}-hop"
  # AWS's advice for a Lambda event source: six times the function's
  # timeout (120 s), so that a batch being processed is not delivered twice.
  visibility_timeout_seconds = 720
  # A message waits at most 15 minutes (DelaySeconds) and is due then; a day
  # leaves time for the retries below.
  message_retention_seconds = 86400
  sqs_managed_sse_enabled   = true
  # An invocation that fails (the task found running, a timeout) is retried
  # when the message is visible again; after three receives it goes to the
  # dead-letter queue, whose alarm fetches an operator.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.scheduler_dlq.arn
    maxReceiveCount     = 3
  })
}

data "aws_iam_policy_document" "hop" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.hop.arn]

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

resource "aws_sqs_queue_policy" "hop" {
  queue_url = aws_sqs_queue.hop.id
  policy    = data.aws_iam_policy_document.hop.json
}
