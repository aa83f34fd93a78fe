"""Small template helpers for the dashboard: times, durations, statuses."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()

ABSOLUTE_FORMAT = "j M Y, H:i:s T"


def relative(moment: datetime, now: datetime | None = None) -> str:
    """ "in 5 min", "3 h ago"...; dashboard.js keeps it current with the same rules."""
    seconds = (moment - (now or timezone.now())).total_seconds()
    size = abs(seconds)
    if size < 45:
        return "now" if size < 5 else ("in a few seconds" if seconds > 0 else "seconds ago")
    if size < 90 * 60:
        amount = f"{round(size / 60)} min"
    elif size < 36 * 3600:
        amount = f"{round(size / 3600)} h"
    else:
        amount = f"{round(size / 86400)} d"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


@register.inclusion_tag("tasks/_when.html")
def when(moment: datetime | None, layout: str = "stacked") -> dict:
    """A time shown relative, with the absolute time in the operator's zone."""
    return {"moment": moment, "relative": relative(moment) if moment else "", "layout": layout}


@register.filter
def duration(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "–"
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    return f"{milliseconds / 1000:.1f} s"


@register.filter
def short_id(task_id: str) -> str:
    return task_id[:8]
