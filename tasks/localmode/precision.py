"""How precisely the local stand-in fires schedules: SCHEDULER_LOCAL_PRECISION.

`second` (the default): at the scheduled second. `minute`: at a random
instant of the scheduled minute, as EventBridge Scheduler may (its documented
precision for a one-time schedule with FlexibleTimeWindow OFF is 60 s:
"between 1:00:00 and 1:00:59"), so the local mode shows what the design does
under EventBridge's real behaviour, not under the stand-in's kindness.
"""

from __future__ import annotations

import os
import random

CHOICES = ("second", "minute")


def mode() -> str:
    value = os.environ.get("SCHEDULER_LOCAL_PRECISION", "").strip().lower() or "second"
    if value not in CHOICES:
        raise ValueError(f"SCHEDULER_LOCAL_PRECISION must be second or minute, not {value!r}")
    return value


def fire_at(at: float, key: str = "") -> float:
    """When the stand-in fires a schedule whose time is `at` (epoch seconds).
    In the minute mode the instant is random but the same each time it is
    asked for one schedule (`key`, its name), so reading the schedule again
    does not move it."""
    if mode() != "minute":
        return at
    minute = at - at % 60
    return minute + random.Random(f"{key}@{at}").uniform(0.0, 60.0)


def banner() -> str | None:
    """The start-up line of the minute mode (None for the default)."""
    if mode() != "minute":
        return None
    return (
        "Precision: minute (schedules fire at a random second of their minute, "
        "as EventBridge Scheduler may)"
    )
