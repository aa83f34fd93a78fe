"""The local endpoint's health as the web app sees it (for the dashboard's
banner): whether its state is being saved, read from GET /_local/health at
most every few seconds."""

from __future__ import annotations

import json
import os
import threading
import time

CACHE_SECONDS = 2.0

_lock = threading.Lock()
_cached: tuple[float, str | None] = (0.0, None)


def local_problem() -> str | None:
    """A sentence for the operator when the local endpoint cannot save its
    state or cannot be reached; None when all is well."""
    global _cached
    with _lock:
        checked, problem = _cached
        if time.monotonic() - checked < CACHE_SECONDS:
            return problem
    problem = _ask()
    with _lock:
        _cached = (time.monotonic(), problem)
    return problem


def _ask() -> str | None:
    import urllib3

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return None
    try:
        response = urllib3.request(
            "GET", endpoint.rstrip("/") + "/_local/health", timeout=0.5, retries=False
        )
        health = json.loads(response.data)
    except (urllib3.exceptions.HTTPError, ValueError):
        return "The local AWS endpoint is not answering (restarting?): changes may fail meanwhile."
    if health.get("ok", True):
        return None
    return (
        f"The local state is not being saved: {health.get('problem')}. Answered writes "
        "are kept in the journal; the save is retried. Check the data folder (.local/)."
    )
