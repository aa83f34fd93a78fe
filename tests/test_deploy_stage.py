"""zappa_settings.json and `make deploy|update|reset` (deploy/zappa_stage.py),
checked without AWS: the script's --dry-run prints what it would hand Zappa."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = json.loads((ROOT / "zappa_settings.json").read_text())
ACCOUNT = "123456789012"


def terraform_outputs(stage: str, region: str = "us-east-1") -> dict:
    """What `terraform output -json` prints for a stage (terraform/outputs.tf)."""
    prefix = f"task-scheduler-{stage}"
    values = {
        "region": region,
        "web_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{prefix}-web",
        "executor_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{prefix}-executor",
        "scheduler_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{prefix}-scheduler",
        "web_function_name": prefix,
        "executor_function_name": f"{prefix}-executor",
        "dlq_arn": f"arn:aws:sqs:{region}:{ACCOUNT}:{prefix}-scheduler-dlq",
        "hop_queue_arn": f"arn:aws:sqs:{region}:{ACCOUNT}:{prefix}-hop",
        "zappa_environment_variables": {
            "SCHEDULER_TABLE_PREFIX": prefix,
            "TASKS_TABLE": f"{prefix}-tasks",
            "API_KEYS_TABLE": f"{prefix}-api-keys",
            "OPERATORS_TABLE": f"{prefix}-operators",
            "SCHEDULER_GROUP_NAME": prefix,
            "EXECUTOR_FUNCTION_ARN": f"arn:aws:lambda:{region}:{ACCOUNT}:function:{prefix}-executor",
            "SCHEDULER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{prefix}-scheduler",
            "SCHEDULER_DLQ_ARN": f"arn:aws:sqs:{region}:{ACCOUNT}:{prefix}-scheduler-dlq",
        },
    }
    return {k: {"sensitive": False, "type": "string", "value": v} for k, v in values.items()}


def dry_run(
    tmp_path,
    action: str,
    stage: str,
    outputs_stage: str | None = None,
    region: str = "us-east-1",
    **env: str,
):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(terraform_outputs(outputs_stage or stage, region)))
    return subprocess.run(
        [sys.executable, "-m", "deploy.zappa_stage", action, stage, "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "TERRAFORM_OUTPUTS": str(outputs),
            "DJANGO_SECRET_KEY": "s3cret-django-key",
            "WEBHOOK_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            **env,
        },
    )


def split(output: str) -> tuple[dict, list[str]]:
    lines = output.splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.startswith("$ "))
    return json.loads("\n".join(lines[:first_command])), lines[first_command:]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_it_defines_a_web_and_an_executor_stage_per_environment(stage):
    web, executor = SETTINGS[stage], SETTINGS[f"{stage}_executor"]
    assert web["runtime"] == "python3.13"
    assert web["django_settings"] == "scheduler_site.settings"
    assert web["manage_roles"] is False
    assert web["debug"] is False and web["log_level"] == "INFO"
    assert web["keep_warm"] is False
    assert executor["extends"] == stage
    assert executor["apigateway_enabled"] is False
    assert executor["timeout_seconds"] != web["timeout_seconds"]
    assert executor["memory_size"] != web["memory_size"]
    # `extends` is shallow: the nested environment is spelled out per stage.
    assert (
        executor["environment_variables"]["LOG_LEVEL"] == web["environment_variables"]["LOG_LEVEL"]
    )
    # The executor loads Django's settings but not its WSGI app (see the README).
    assert executor["django_settings"] is None
    assert executor["environment_variables"]["DJANGO_SETTINGS_MODULE"] == web["django_settings"]
    text = json.dumps(SETTINGS)
    assert "SECRET" not in text and "whsec_" not in text


def test_it_wires_terraform_outputs_and_secrets_into_both_functions(tmp_path):
    result = dry_run(tmp_path, "deploy", "dev")
    assert result.returncode == 0, result.stderr
    settings, _ = split(result.stdout)
    web, executor = settings["dev"], settings["dev_executor"]
    assert web["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/task-scheduler-dev-web"
    assert executor["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/task-scheduler-dev-executor"
    assert web["aws_region"] == executor["aws_region"] == "us-east-1"
    # EventBridge Scheduler invokes the executor asynchronously: what it fails
    # after Lambda's retries goes to the dead-letter queue (the web: no queue).
    assert executor["dead_letter_arn"] == (
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:task-scheduler-dev-scheduler-dlq"
    )
    assert "dead_letter_arn" not in web
    for env in (web["aws_environment_variables"], executor["aws_environment_variables"]):
        assert env["EXECUTOR_FUNCTION_ARN"].endswith(":function:task-scheduler-dev-executor")
        assert env["TASKS_TABLE"] == "task-scheduler-dev-tasks"
        assert env["DJANGO_SECRET_KEY"] == "********"  # masked in the printout
    # Least privilege: the web function never holds the signing secret.
    assert "WEBHOOK_SIGNING_SECRET" not in web["aws_environment_variables"]
    assert executor["aws_environment_variables"]["WEBHOOK_SIGNING_SECRET"] == "********"
    assert (
        web["aws_environment_variables"]["DJANGO_ALLOWED_HOSTS"]
        == ".lambda-url.us-east-1.on.aws"  # the web stages use a function URL
    )
    assert "s3cret" not in result.stdout


def test_it_deploys_the_executor_before_the_web_function_from_the_built_zips(tmp_path):
    result = dry_run(tmp_path, "deploy", "dev", DJANGO_ALLOWED_HOSTS="tasks.example.com")
    settings, steps = split(result.stdout)
    assert [s.split()[2:4] for s in steps] == [["deploy", "dev_executor"], ["deploy", "dev"]]
    assert steps[0].endswith("--zip " + str(ROOT / "build" / "task-scheduler-dev-executor.zip"))
    assert steps[1].endswith("--zip " + str(ROOT / "build" / "task-scheduler-dev.zip"))
    assert (
        settings["dev"]["aws_environment_variables"]["DJANGO_ALLOWED_HOSTS"] == "tasks.example.com"
    )


def test_it_resets_by_undeploying_web_first_then_deploying_again(tmp_path):
    result = dry_run(tmp_path, "reset", "prod")
    _, steps = split(result.stdout)
    assert [s.split()[2:4] for s in steps] == [
        ["undeploy", "prod"],
        ["undeploy", "prod_executor"],
        ["deploy", "prod_executor"],
        ["deploy", "prod"],
    ]
    # Terraform owns the log groups: Zappa must not remove them.
    assert not any("--remove-logs" in s for s in steps)


def test_it_refuses_terraform_outputs_of_another_stage(tmp_path):
    result = dry_run(tmp_path, "update", "prod", outputs_stage="dev")
    assert result.returncode == 2
    assert "not 'task-scheduler-prod'" in result.stderr


def test_it_refuses_a_signing_secret_that_is_not_a_standard_webhooks_secret(tmp_path):
    result = dry_run(tmp_path, "deploy", "dev", WEBHOOK_SIGNING_SECRET="plain")
    assert result.returncode == 2
    assert "whsec_" in result.stderr


def test_it_refuses_a_region_other_than_the_one_packaged(tmp_path):
    # Zappa bakes aws_region into the package as AWS_REGION.
    result = dry_run(tmp_path, "deploy", "dev", region="eu-west-1")
    assert result.returncode == 2
    assert (
        "Terraform's region is eu-west-1, zappa_settings.json's aws_region is us-east-1"
        in result.stderr
    )


@pytest.mark.parametrize("stage", ["dev_executor", "prod_executor"])
def test_it_gives_the_executor_time_for_an_early_delivery_and_a_slow_webhook(stage):
    from tasks.services.running import MAX_EARLY_WAIT_SECONDS

    webhook_timeout = 10  # WEBHOOK_TIMEOUT_SECONDS' production default
    needed = MAX_EARLY_WAIT_SECONDS + webhook_timeout + 15  # the writes, a retry's schedule
    assert SETTINGS[stage]["timeout_seconds"] >= needed
