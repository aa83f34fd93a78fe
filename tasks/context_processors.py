"""Template context for every dashboard page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def local_health(request: HttpRequest) -> dict:
    """A banner when the local mode cannot save its state (never on AWS)."""
    if not settings.LOCAL_MODE:
        return {}
    from tasks.localmode.health import local_problem

    return {"local_problem": local_problem()}
