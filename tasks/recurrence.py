"""Recurrence expressions: the user's 5-field Unix cron or rate, the
EventBridge Scheduler expression it becomes, and when that expression fires.

One evaluator (`fire_times`, on cronsim) serves the API's `nextRuns`
preview and the local stand-in, so both follow the same rules, which are
EventBridge Scheduler's for daylight saving time: a cron time that does not
exist (skipped in spring) does not run; a time that occurs twice (autumn)
runs once, at its first occurrence.

No Django here: the local stand-in imports it too. cronsim is imported where
it is used: the executor's path (scheduled_time_text) does not need it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

MAX_CRON_LENGTH = 100
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# Unix cron's fields, as EventBridge's cron() names them.
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_TOKEN = re.compile(r"^[0-9A-Za-z*,/-]+$")
_NAMES = {
    "month": {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"},
    "day-of-week": set(DAY_NAMES),
}
_RATE = re.compile(r"^\s*(\d{1,6})\s+(minute|minutes|hour|hours|day|days)\s*$", re.I)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# EventBridge's context attribute, replaced in a schedule's Input by the
# time the invocation was scheduled for.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


class ExpressionError(ValueError):
    """A cron, rate or timezone that cannot be used; the message says why."""


@cache
def zone(name: str) -> ZoneInfo:
    """The IANA timezone, or ExpressionError."""
    if not isinstance(name, str) or not name:
        raise ExpressionError("timezone must be an IANA name, e.g. Europe/Paris")
    if name not in _timezone_names():
        raise ExpressionError(
            f"unknown timezone {name[:64]!r}; use an IANA name, e.g. Europe/Paris"
        )
    return ZoneInfo(name)


@cache
def _timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


# --- the user's forms -> EventBridge ---------------------------------------------------


def cron_to_eventbridge(cron: str) -> str:
    """`"0 9 * * MON-FRI"` -> `"cron(0 9 ? * MON-FRI *)"`, or ExpressionError.

    Each field is rendered from the set of values cronsim parsed, so the
    expression EventBridge runs is the one the preview evaluates. The
    day-of-week becomes names: Unix counts 0-6 from Sunday (7 is Sunday
    too), EventBridge 1-7 from Sunday."""
    fields = _cron_fields(cron)
    sim = _parse(" ".join(fields))
    dom_free, dow_free = _unrestricted(fields[2]), _unrestricted(fields[4])
    if not dom_free and not dow_free:
        raise ExpressionError(
            "a cron with both a day of the month and a day of the week runs when either "
            "matches in Unix cron, which EventBridge Scheduler cannot express: make two "
            f"schedules, one with '{' '.join([*fields[:4], '*'])}' and one with "
            f"'{' '.join([*fields[:2], '*', fields[3], fields[4]])}'"
        )
    minute = _render(sim.minutes, 0, 59)
    hour = _render(sim.hours, 0, 23)
    month = _render(sim.months, 1, 12)
    if dow_free:
        dom, dow = _render(sim.days, 1, 31), "?"
    else:
        dom, dow = "?", _render_days({d % 7 for d in sim.weekdays})
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


def _cron_fields(cron: str) -> list[str]:
    if not isinstance(cron, str) or not cron.strip():
        raise ExpressionError("cron is empty; write 5 fields, e.g. '0 9 * * MON-FRI'")
    if len(cron) > MAX_CRON_LENGTH:
        raise ExpressionError(f"cron is longer than {MAX_CRON_LENGTH} characters")
    fields = cron.split()
    if len(fields) != 5:
        raise ExpressionError(
            f"cron has {len(fields)} fields; write the 5 of Unix cron "
            "(minute hour day-of-month month day-of-week), e.g. '0 9 * * MON-FRI'"
        )
    for name, field in zip(FIELDS, fields, strict=True):
        words = set(re.findall(r"[A-Za-z]+", field.upper()))
        if field != "?" and (not _TOKEN.match(field) or not words <= _NAMES.get(name, set())):
            names = " or names" if name in _NAMES else ""
            raise ExpressionError(
                f"cron's {name} field {field!r} may use only numbers{names}, *, ',', - and /"
            )
    return ["*" if f == "?" else f for f in fields]


def _parse(five_fields: str):
    from cronsim import CronSim, CronSimError

    try:
        sim = CronSim(five_fields, datetime(2000, 1, 1))
    except CronSimError as exc:  # "Bad minute", "Bad day-of-week"...
        raise ExpressionError(f"cron {five_fields!r}: {str(exc).lower()}") from None
    return sim


def _unrestricted(field: str) -> bool:
    return field in ("*", "?", "*/1")


def _render(values: set, low: int, high: int) -> str:
    """A set of field values in EventBridge's syntax: `*`, `start/step`, or
    a list of values and ranges."""
    values = sorted(v for v in values if isinstance(v, int) and low <= v <= high)
    if values == list(range(low, high + 1)):
        return "*"
    if len(values) > 2:
        step = values[1] - values[0]
        if values == list(range(values[0], high + 1, step)) and step > 1:
            return f"{values[0]}/{step}"
    return ",".join(_ranges(values, str))


def _render_days(days: set[int]) -> str:
    if days == set(range(7)):
        return "*"
    return ",".join(_ranges(sorted(days), lambda d: DAY_NAMES[d]))


def _ranges(values: list[int], name) -> list[str]:
    parts: list[str] = []
    start = prev = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(name(start) if start == prev else f"{name(start)}-{name(prev)}")
        if value is not None:
            start = prev = value
    return parts


def rate_to_eventbridge(rate: str) -> str:
    """`"5 minutes"` -> `"rate(5 minutes)"` (EventBridge wants the unit
    singular for 1, plural otherwise), or ExpressionError."""
    match = _RATE.match(rate) if isinstance(rate, str) else None
    if match is None:
        if isinstance(rate, str) and re.search(r"\bsec", rate, re.I):
            raise ExpressionError("rate must be at least 1 minute")
        raise ExpressionError(
            "rate must be a number and a unit, e.g. '5 minutes', '1 hour', '2 days'"
        )
    value, unit = int(match.group(1)), match.group(2).lower().rstrip("s")
    if value < 1:
        raise ExpressionError("rate must be at least 1 minute")
    return f"rate({value} {unit}{'' if value == 1 else 's'})"


def describe(*, cron: str | None, rate: str | None, timezone: str) -> str:
    """In words: "At 09:00, Monday through Friday (Europe/Paris)"."""
    if rate:
        value, unit = rate_to_eventbridge(rate)[5:-1].split()
        words = f"Every {unit}" if value == "1" else f"Every {value} {unit}"
    else:
        from cron_descriptor import ExpressionDescriptor, Options

        options = Options()
        options.use_24hour_time_format = True
        options.verbose = False
        words = ExpressionDescriptor(" ".join(_cron_fields(cron or "")), options).get_description()
    return f"{words} ({timezone})"


# --- when an EventBridge expression fires ------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Where a recurring schedule may fire: from `start` (inclusive) to
    `end` (exclusive); `anchor` is when a rate schedule's rhythm starts."""

    start: datetime | None = None
    end: datetime | None = None
    anchor: datetime | None = None


def fire_times(
    expression: str, timezone: str, *, after: datetime, window: Window = Window()
) -> Iterator[datetime]:
    """The times (UTC) the expression fires strictly after `after`, in order,
    within the window. `at(...)` fires once; `rate(...)` every period from the
    window's start (or anchor); `cron(...)` at each matching wall-clock time
    in the timezone that exists, once."""
    floor = after
    if window.start is not None and window.start > floor:
        floor = window.start - timedelta(microseconds=1)
    if expression.startswith("at("):
        times: Iterator[datetime] = iter([_at(expression, timezone)])
    elif expression.startswith("rate("):
        times = _rate_times(expression, floor, window)
    elif expression.startswith("cron("):
        times = _cron_times(expression, timezone, floor)
    else:
        raise ExpressionError(f"not a schedule expression: {expression}")
    for when in times:
        if when <= floor:
            continue
        if window.end is not None and when >= window.end:
            return
        yield when


def previous_fire_time(
    expression: str, timezone: str, *, before: datetime, window: Window = Window()
) -> datetime | None:
    """The last time (UTC) the expression fired at or before `before`, within
    the window; None if it never did."""
    if window.end is not None and window.end <= before:
        before = window.end - timedelta(microseconds=1)
    if expression.startswith("rate("):
        period, anchor = _rate_period(expression), window.anchor or window.start
        if anchor is None or anchor > before:
            return None
        return anchor + period * ((before - anchor) // period)
    if not expression.startswith("cron("):
        at = _at(expression, timezone)
        return at if at <= before and _inside(at, window) else None
    from cronsim import CronSim

    tz = zone(timezone)
    local = before.astimezone(tz).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
    for naive in CronSim(_cron_as_unix(expression), local, reverse=True):
        when = _localize(naive, tz)
        if when is None or when > before:
            continue
        return when if _inside(when, window) else None
    return None


def _inside(when: datetime, window: Window) -> bool:
    return (window.start is None or when >= window.start) and (
        window.end is None or when < window.end
    )


def _at(expression: str, timezone: str) -> datetime:
    local = datetime.fromisoformat(expression[3:-1])
    return local.replace(tzinfo=zone(timezone or "UTC")).astimezone(UTC)


def _rate_period(expression: str) -> timedelta:
    value, unit = expression[5:-1].split()
    return timedelta(seconds=int(value) * _UNIT_SECONDS[unit.rstrip("s")])


def _rate_times(expression: str, floor: datetime, window: Window) -> Iterator[datetime]:
    period = _rate_period(expression)
    anchor = window.anchor or window.start or floor
    steps = max(0, (floor - anchor) // period)
    when = anchor + period * steps
    while True:
        yield when
        when += period


def _cron_as_unix(expression: str) -> str:
    """EventBridge's `cron(min hour dom month dow year)` as the 5 fields
    cronsim reads (only the year `*` occurs: this app writes no other)."""
    minute, hour, dom, month, dow, year = expression[5:-1].split()
    if year != "*":
        raise ExpressionError(f"cron year {year!r} is not supported here")
    if dow not in ("?", "*"):
        # EventBridge numbers days 1-7 from Sunday; cronsim 0-6.
        dow = re.sub(r"\d", lambda m: str((int(m.group()) - 1) % 7), dow)
    return " ".join("*" if f == "?" else f for f in (minute, hour, dom, month, dow))


def _cron_times(expression: str, timezone: str, floor: datetime) -> Iterator[datetime]:
    from cronsim import CronSim

    # cronsim walks naive wall-clock times: each matching local time once.
    # Each is then placed in the timezone: skipped if it does not exist,
    # its first occurrence if it occurs twice (EventBridge's DST rules).
    tz = zone(timezone)
    # From the wall-clock time of `floor`: in a repeated hour's second pass
    # the times found are already past (fire_times drops them).
    local = floor.astimezone(tz).replace(tzinfo=None, microsecond=0)
    for naive in CronSim(_cron_as_unix(expression), local):
        when = _localize(naive, tz)
        if when is not None:
            yield when


def _localize(naive: datetime, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time: None if the clocks skipped it;
    the earlier one if it occurs twice (fold=0)."""
    aware = naive.replace(tzinfo=tz, fold=0)
    instant = aware.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != naive:
        return None
    return instant


def scheduled_time_text(when: datetime) -> str:
    """The value EventBridge substitutes for <aws.scheduler.scheduled-time>."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
