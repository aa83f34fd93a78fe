"""The Chromium the browser tests drive, and installing one where there is none.

Found, in this order: $CHROMIUM_PATH; `chromium` (or `chromium-browser`) on the
PATH or Debian's /usr/bin/chromium; Playwright's own download.

`make test` runs `python -m tests.chromium --install` first (`make browser`):
when none is found it installs Debian's package (as root, or with passwordless
sudo, on Debian), else Playwright's download (where its CDN is reachable).
When neither works it says so in one line, and the browser tests skip with
that line: everything else still runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

DEBIAN_CHROMIUM = "/usr/bin/chromium"
INSTALL_TIMEOUT = 900  # seconds: a slow network, not a dead one


def find() -> str | None:
    """The path of a Chromium to launch, or None."""
    if configured := os.environ.get("CHROMIUM_PATH"):
        if not os.access(configured, os.X_OK):
            raise FileNotFoundError(f"CHROMIUM_PATH={configured} is not an executable")
        return configured
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    return _playwright_chromium()


def _playwright_chromium() -> str | None:
    """Playwright's download (`playwright install chromium`), if it is there."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if os.access(path, os.X_OK) else None


def install_command() -> str:
    """The one command that would install a Chromium on this machine."""
    if _is_debian():
        return ("" if os.geteuid() == 0 else "sudo ") + "apt-get install chromium"
    return f"{_venv_python()} -m playwright install chromium"


def missing() -> str:
    return (
        f"Chromium not found: the browser tests are skipped "
        f"(install it with `{install_command()}`, or set CHROMIUM_PATH)"
    )


def install() -> str | None:
    """Find a Chromium, or install one; None (and one line saying so) when
    neither works."""
    if found := find():
        return found
    for name, commands in _installers():
        print(f"Installing Chromium for the browser tests: {name}", flush=True)
        for command in commands:
            if error := _run(command):
                print(f"  failed: {error}")
                break
        else:
            if found := find():
                return found
    print(missing())
    return None


def _installers() -> Iterator[tuple[str, list[list[str]]]]:
    """Ways to install Chromium here, best first: a name and its commands."""
    if _is_debian() and (as_root := _as_root()) is not None:
        apt = [*as_root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        yield (
            "Debian's package (apt-get install chromium)",
            [[*apt, "update", "-qq"], [*apt, "install", "-y", "-qq", "chromium"]],
        )
    yield (
        "Playwright's download (playwright install chromium)",
        [[sys.executable, "-m", "playwright", "install", "chromium"]],
    )


def _is_debian() -> bool:
    # Ubuntu's `chromium` package is a stub for the snap: not in a container.
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        return False
    return "ID=debian" in release.split() and shutil.which("apt-get") is not None


def _as_root() -> list[str] | None:
    """The prefix that runs a command as root without asking, or None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and _run(["sudo", "-n", "true"]) is None:
        return ["sudo", "-n"]
    return None


def _run(command: list[str]) -> str | None:
    """Run a command, its output kept back; None when it succeeds, else the
    line of its output that says why."""
    try:
        completed = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if completed.returncode == 0:
        return None
    lines = [line.strip() for line in completed.stdout.splitlines() if line.strip()]
    # apt-get and Playwright start their reason with these; what follows is
    # a stack trace.
    if errors := [line for line in lines if line.startswith(("Error:", "E:"))]:
        return errors[0]
    return lines[-1] if lines else f"exit status {completed.returncode}"


def _venv_python() -> str:
    python = Path(sys.executable)
    return str(python.relative_to(Path.cwd()) if python.is_relative_to(Path.cwd()) else python)


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:
        install()
    else:
        print(find() or missing())
