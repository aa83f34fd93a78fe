"""`make lambda`: build the web and the executor package of a stage into build/.

    python -m deploy.build_lambda [--stage dev]

Zappa packages the *active* virtualenv (VIRTUAL_ENV), test tools and all, so
the packages are built from a separate one, build/.venv-lambda, that holds
requirements.txt and Zappa's runtime half only (deploy/requirements-handler.txt);
it is rebuilt when either file changes. Then: collectstatic, `zappa package`
for both stages (with dummy AWS credentials and an endpoint that goes nowhere:
packaging must never reach AWS), and deploy/package.py's finishing (bytecode,
glibc check, size limit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from deploy.lambda_package import (
    MAX_UNZIPPED_BYTES,
    PackageError,
    PackageStats,
    finish,
    mib,
)

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
VENV = BUILD / ".venv-lambda"  # hidden: Zappa's websocket scan skips it
REQUIREMENTS = [ROOT / "requirements.txt", ROOT / "deploy" / "requirements-handler.txt"]
SETTINGS_FILE = ROOT / "zappa_settings.json"

# Packaging reads no AWS state; these make sure it could not if it tried.
OFFLINE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}


def stage_setting(stage: str, key: str, default=None):
    """A stage's setting as Zappa resolves it (`extends` included)."""
    settings = json.loads(SETTINGS_FILE.read_text())
    while stage:
        if key in settings[stage]:
            return settings[stage][key]
        stage = settings[stage].get("extends")
    return default


def entry_point(stage: str) -> str:
    """The function's Handler: what Lambda calls."""
    return stage_setting(stage, "lambda_handler", "handler.lambda_handler")


def lambda_name(stage: str) -> str:
    """Zappa's function name for a stage (it slugifies the underscore)."""
    settings = json.loads(SETTINGS_FILE.read_text())
    project = (
        settings[stage].get("project_name") or settings[settings[stage]["extends"]]["project_name"]
    )
    return f"{project}-{stage}".replace("_", "-")


def package_path(stage: str) -> Path:
    return BUILD / f"{lambda_name(stage)}.zip"


def _requirements_hash() -> str:
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for path in REQUIREMENTS:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *args,
        ],
        check=True,
    )


def ensure_venv() -> Path:
    """build/.venv-lambda, rebuilt only when the requirements change."""
    stamp = VENV / ".requirements-sha256"
    wanted = _requirements_hash()
    if stamp.exists() and stamp.read_text() == wanted:
        return VENV
    print(f"building {VENV.relative_to(ROOT)} (requirements changed or first build)")
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    _pip("-r", str(REQUIREMENTS[0]))
    # --no-deps: Zappa's CLI dependencies (troposphere, requests, ...) never ship.
    _pip("--no-deps", "-r", str(REQUIREMENTS[1]))
    stamp.write_text(wanted)
    return VENV


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_", "SCHEDULER_"))
    }
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def collectstatic(venv: Path) -> None:
    """Production static files (hashed names, compressed) into staticfiles/."""
    env = _clean_env(DJANGO_SECRET_KEY="collectstatic-only", DJANGO_DEBUG="false")
    subprocess.run(
        [str(venv / "bin" / "python"), "manage.py", "collectstatic", "--noinput", "--clear", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def zappa_package(stage: str, venv: Path, output: Path) -> None:
    zappa = Path(sys.executable).parent / "zappa"
    env = _clean_env(VIRTUAL_ENV=str(venv), **OFFLINE_AWS)
    env.pop("AWS_PROFILE", None)
    subprocess.run(
        [str(zappa), "package", stage, "-s", str(SETTINGS_FILE), "-o", str(output)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def build(stage: str) -> PackageStats:
    settings = json.loads(SETTINGS_FILE.read_text())
    architecture = settings[stage].get("architecture", "x86_64")
    raw = BUILD / f"raw-{lambda_name(stage)}.zip"
    raw.unlink(missing_ok=True)
    zappa_package(stage, VENV, raw)
    try:
        return finish(raw, package_path(stage), architecture=architecture)
    finally:
        raw.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--stage", default="dev", help="web stage; its <stage>_executor is built too"
    )
    args = parser.parse_args()
    stages = [args.stage, f"{args.stage}_executor"]
    settings = json.loads(SETTINGS_FILE.read_text())
    missing = [s for s in stages if s not in settings]
    if missing:
        print(f"error: no stage {', '.join(missing)} in {SETTINGS_FILE.name}", file=sys.stderr)
        return 2

    started = time.monotonic()
    BUILD.mkdir(exist_ok=True)
    venv = ensure_venv()
    collectstatic(venv)
    results = []
    try:
        for stage in stages:
            results.append(build(stage))
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for package in results:
        print(
            f"{package.path.relative_to(ROOT)}: {mib(package.zipped_bytes)} zipped, "
            f"{mib(package.unzipped_bytes)} unzipped, {package.files} files "
            f"(limit {mib(MAX_UNZIPPED_BYTES)} unzipped)"
        )
    print(f"built in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
