"""`make deploy|update|reset STAGE=dev`: Zappa for both functions of a stage,
in the right order, with Terraform's outputs and the secrets wired in.

    python -m deploy.zappa_stage {deploy,update,reset} STAGE [--dry-run]

The packages are the ones `make lambda` built and the tests ran (`--zip`);
Zappa does not package again. zappa_settings.json holds what is the same for
every account; this script adds, in a settings file that lives only while
Zappa runs (mode 0600, then deleted):
- role_arn of each function, from Terraform (manage_roles is false);
- the executor's dead_letter_arn: Terraform's dlq_arn, and its hop queue's
  event source ARN: Terraform's hop_queue_arn;
- aws_environment_variables: Terraform's `zappa_environment_variables`
  (tables, schedule group, executor ARN, scheduler role, DLQ), the hosts, and
  the secrets DJANGO_SECRET_KEY (both) and WEBHOOK_SIGNING_SECRET (executor
  only), taken from the environment or else from SSM Parameter Store
  SecureStrings /task-scheduler/<stage>/<NAME>. They end up in the functions'
  configuration (encrypted at rest), never in git or in the package.

Order: the executor first, so that it exists before the web function can
schedule tasks for it; `reset` undeploys the web function first, so no task
is scheduled while the executor is gone. Terraform's log groups are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from deploy.build_lambda import ROOT, SETTINGS_FILE, lambda_name, package_path, stage_setting

SECRETS = {
    "web": ["DJANGO_SECRET_KEY"],
    "executor": ["DJANGO_SECRET_KEY", "WEBHOOK_SIGNING_SECRET"],
}
# Optional settings passed through from the caller's environment.
PASSTHROUGH = {
    "web": ["DJANGO_ALLOWED_HOSTS", "DJANGO_CSRF_TRUSTED_ORIGINS", "CORS_ALLOWED_ORIGINS"],
    "executor": ["WEBHOOK_TIMEOUT_SECONDS"],
}


class DeployError(Exception):
    pass


def terraform_outputs(stage: str) -> dict:
    """`terraform output -json` of the stage's state (or the file named by
    TERRAFORM_OUTPUTS), checked to belong to this stage."""
    path = os.environ.get("TERRAFORM_OUTPUTS")
    if path:
        raw = json.loads(Path(path).read_text())
    else:
        result = subprocess.run(
            ["terraform", f"-chdir={ROOT / 'terraform'}", "output", "-json"],
            check=True,
            capture_output=True,
            text=True,
        )
        raw = json.loads(result.stdout)
    outputs = {
        name: item["value"] if isinstance(item, dict) and "value" in item else item
        for name, item in raw.items()
    }
    expected = lambda_name(stage)
    if outputs.get("web_function_name") != expected:
        raise DeployError(
            f"the Terraform outputs are for {outputs.get('web_function_name')!r}, not {expected!r}: "
            "apply terraform/ with -var stage=... for this stage first (see the README)"
        )
    return outputs


def secrets(stage: str, region: str) -> dict[str, str]:
    names = sorted({n for group in SECRETS.values() for n in group})
    values = {n: os.environ[n] for n in names if os.environ.get(n)}
    missing = [n for n in names if n not in values]
    if missing:
        import boto3

        ssm = boto3.client("ssm", region_name=region)
        paths = {f"/task-scheduler/{stage}/{n}": n for n in missing}
        found = ssm.get_parameters(Names=list(paths), WithDecryption=True)["Parameters"]
        values.update({paths[p["Name"]]: p["Value"] for p in found})
    missing = [n for n in names if not values.get(n)]
    if missing:
        raise DeployError(
            f"no value for {', '.join(missing)}: set it in the environment or as SSM "
            f"SecureString /task-scheduler/{stage}/<NAME>"
        )
    if not values["WEBHOOK_SIGNING_SECRET"].startswith("whsec_"):
        raise DeployError("WEBHOOK_SIGNING_SECRET must be a Standard Webhooks secret (whsec_...)")
    return values


def render(
    stage: str, outputs: dict, secret_values: dict[str, str], environ: dict[str, str]
) -> dict:
    """zappa_settings.json with the two stages completed for this account."""
    settings = json.loads(SETTINGS_FILE.read_text())
    region = outputs["region"]
    packaged = stage_setting(stage, "aws_region")
    if region != packaged:
        # Zappa bakes aws_region into the package as AWS_REGION, which would
        # win over the function's own: the clients would talk to another region.
        raise DeployError(
            f"Terraform's region is {region}, zappa_settings.json's aws_region is {packaged}: "
            "make them the same (then make lambda) before deploying"
        )
    account = outputs["web_role_arn"].split(":")[4]
    shared_env = dict(outputs["zappa_environment_variables"])
    if settings[stage].get("function_url_enabled"):
        # The function URL's host in the region until a custom domain is set.
        front = f"lambda-url.{region}.on.aws"
    else:
        front = f"execute-api.{region}.amazonaws.com"  # API Gateway's
    defaults = {
        "DJANGO_ALLOWED_HOSTS": f".{front}",
        "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://*.{front}",
    }
    for kind, name in (("web", stage), ("executor", f"{stage}_executor")):
        env = dict(shared_env)
        for key in PASSTHROUGH[kind]:
            if environ.get(key) or key in defaults:
                env[key] = environ.get(key) or defaults[key]
        env.update({key: secret_values[key] for key in SECRETS[kind]})
        settings[name].update(
            {
                "aws_region": region,
                "role_arn": outputs[f"{kind}_role_arn"],
                "aws_environment_variables": env,
                "s3_bucket": environ.get("ZAPPA_S3_BUCKET")
                or f"task-scheduler-{stage}-zappa-{account}",
            }
        )
        if kind == "executor":
            # EventBridge Scheduler invokes it asynchronously: what it fails
            # (and Lambda's two retries of it) lands in the dead-letter queue.
            settings[name]["dead_letter_arn"] = outputs["dlq_arn"]
            # The hop queue's event source: Zappa creates the mapping on deploy.
            for event in settings[name].get("events", []):
                if event.get("function") == "tasks.executor.run_queued":
                    event["event_source"]["arn"] = outputs["hop_queue_arn"]
    return settings


def commands(action: str, stage: str, settings_path: Path) -> list[list[str]]:
    zappa = str(Path(sys.executable).parent / "zappa")
    web, executor = stage, f"{stage}_executor"

    def run(verb: str, name: str, *extra: str) -> list[str]:
        return [zappa, verb, name, "-s", str(settings_path), *extra]

    def ship(verb: str) -> list[list[str]]:
        return [run(verb, n, "--zip", str(package_path(n))) for n in (executor, web)]

    if action == "reset":
        return [run("undeploy", web, "--yes"), run("undeploy", executor, "--yes"), *ship("deploy")]
    return ship(action)


def masked(settings: dict) -> dict:
    copy = json.loads(json.dumps(settings))
    for stage in copy.values():
        env = stage.get("aws_environment_variables", {})
        for key in env:
            if key in SECRETS["executor"]:
                env[key] = "********"
    return copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["deploy", "update", "reset"])
    parser.add_argument("stage")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the settings and commands only"
    )
    args = parser.parse_args()
    try:
        settings = json.loads(SETTINGS_FILE.read_text())
        if args.stage not in settings or f"{args.stage}_executor" not in settings:
            raise DeployError(
                f"zappa_settings.json has no stages {args.stage} and {args.stage}_executor"
            )
        for name in (args.stage, f"{args.stage}_executor"):
            if not args.dry_run and not package_path(name).exists():
                raise DeployError(
                    f"{package_path(name)} is missing: run make lambda STAGE={args.stage}"
                )
        outputs = terraform_outputs(args.stage)
        rendered = render(
            args.stage, outputs, secrets(args.stage, outputs["region"]), dict(os.environ)
        )
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    settings_path = ROOT / "build" / f"zappa_settings.{args.stage}.deploy.json"
    steps = commands(args.action, args.stage, settings_path)
    if args.dry_run:
        print(json.dumps(masked(rendered), indent=2))
        for step in steps:
            print("$ zappa " + " ".join(step[1:]))
        return 0

    fd = os.open(settings_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(rendered, f, indent=2)
        for step in steps:
            print("$ zappa " + " ".join(step[1:]), flush=True)
            subprocess.run(step, cwd=ROOT, check=True)
    except subprocess.CalledProcessError as exc:
        print(f"error: zappa exited {exc.returncode}", file=sys.stderr)
        return 1
    finally:
        settings_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
