"""Fault points for the local mode's crash tests: `SCHEDULER_LOCAL_FAULT=
<point>@<n>` kills the process (SIGKILL, as kill -9 would) the n-th time it
reaches <point> (n defaults to 1). Inert unless the local mode is on and the
variable names the point: on AWS a point costs one comparison."""

from __future__ import annotations

import os
import signal
import threading

from django.conf import settings

_lock = threading.Lock()
_reached: dict[str, int] = {}


def point(name: str) -> None:
    spec = os.environ.get("SCHEDULER_LOCAL_FAULT")
    if not spec or not settings.LOCAL_MODE:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    with _lock:
        _reached[name] = _reached.get(name, 0) + 1
        if _reached[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
