"""The price table the cost benchmark (bench/cost.py) uses: us-east-1,
on-demand, free tiers left out, as listed on AWS's pricing pages for Lambda,
API Gateway, EventBridge Scheduler, SQS and DynamoDB, recorded here on
2026-12-01 (not fetched by the benchmark: re-check them before relying on
a figure; they change)."""

from __future__ import annotations

DATE = "2026-12-01"
REGION = "us-east-1"

PER_MILLION = {
    # Lambda: per request, and per GB-second of duration (x86_64; arm64 is
    # $0.0000133334), billed per 1 ms.
    "lambda.request": 0.20,
    # The front door, per request: a Lambda function URL costs nothing beyond
    # the function; an API Gateway HTTP API $1.00, a REST API $3.50 (the
    # first 333 M a month).
    "front.function_url": 0.00,
    "front.http_api": 1.00,
    "front.rest_api": 3.50,
    # EventBridge Scheduler: per invocation (its API calls cost nothing).
    "scheduler.invocation": 1.00,
    # SQS standard queue: per request (each 64 KB chunk of a payload).
    "sqs.request": 0.40,
    # DynamoDB on-demand: per write request unit (1 KB) and read request unit
    # (4 KB strongly consistent, or two eventually consistent).
    "dynamodb.wru": 0.625,
    "dynamodb.rru": 0.125,
}
LAMBDA_GB_SECOND = 0.0000166667  # x86_64


def lambda_duration_cost(seconds: float, memory_mb: int) -> float:
    """One invocation's duration cost, billed per started millisecond."""
    billed = max(0.001, -(-seconds * 1000 // 1) / 1000)
    return billed * memory_mb / 1024 * LAMBDA_GB_SECOND
