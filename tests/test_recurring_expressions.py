"""Recurrence expressions: the user's cron and rate as EventBridge's, the
times they fire (daylight saving as EventBridge documents it), and their
description in words."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from tasks.recurrence import (
    ExpressionError,
    Window,
    cron_to_eventbridge,
    describe,
    fire_times,
    previous_fire_time,
    rate_to_eventbridge,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def times(expression: str, timezone: str, after: datetime, n: int, **window) -> list[datetime]:
    return list(islice(fire_times(expression, timezone, after=after, window=Window(**window)), n))


@pytest.mark.parametrize(
    ("cron", "expression"),
    [
        ("0 9 * * MON-FRI", "cron(0 9 ? * MON-FRI *)"),
        ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),  # Unix numbers days from Sunday = 0
        ("30 2 * * 0", "cron(30 2 ? * SUN *)"),
        ("30 2 * * 7", "cron(30 2 ? * SUN *)"),  # 7 is Sunday too
        ("0 0 * * 6,0", "cron(0 0 ? * SUN,SAT *)"),
        ("*/15 * * * *", "cron(0/15 * * * ? *)"),
        ("5/20 * * * *", "cron(5/20 * * * ? *)"),
        ("* * * * *", "cron(* * * * ? *)"),
        ("0 0 1 * *", "cron(0 0 1 * ? *)"),
        ("0 12 1,15 JAN-MAR *", "cron(0 12 1,15 1-3 ? *)"),
        ("0 8-10,14 * * *", "cron(0 8-10,14 * * ? *)"),
        ("0 9 ? * MON", "cron(0 9 ? * MON *)"),
        ("0  9 *  * mon-fri", "cron(0 9 ? * MON-FRI *)"),
    ],
)
def test_it_translates_unix_cron_to_eventbridge(cron, expression):
    assert cron_to_eventbridge(cron) == expression


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("", "cron is empty"),
        ("0 9 * *", "cron has 4 fields"),
        ("0 0 9 * * MON", "cron has 6 fields"),
        ("61 * * * *", "bad minute"),
        ("0 24 * * *", "bad hour"),
        ("0 0 32 * *", "bad day-of-month"),
        ("0 0 * 13 *", "bad month"),
        ("0 0 * * 9", "bad day-of-week"),
        ("0 0 L * *", "may use only numbers, "),  # no extensions: standard Unix cron
        ("0 0 * * 5L", "may use only numbers or names"),
        ("0 0 * * FUNDAYS", "may use only numbers or names"),
        ("0 0 * * MON#1", "may use only"),
        ("@daily", "cron has 1 fields"),
    ],
)
def test_it_refuses_a_malformed_cron_saying_why(cron, message):
    with pytest.raises(ExpressionError, match=message):
        cron_to_eventbridge(cron)


def test_it_refuses_both_day_fields_explaining_eventbridge_and_two_schedules():
    with pytest.raises(ExpressionError) as caught:
        cron_to_eventbridge("0 9 1 * MON")
    message = str(caught.value)
    assert "either" in message and "EventBridge Scheduler cannot express" in message
    assert "'0 9 1 * *'" in message and "'0 9 * * MON'" in message


@pytest.mark.parametrize(
    ("rate", "expression"),
    [
        ("5 minutes", "rate(5 minutes)"),
        ("1 minute", "rate(1 minute)"),
        ("1 minutes", "rate(1 minute)"),
        ("1 hour", "rate(1 hour)"),
        ("2 days", "rate(2 days)"),
        ("2 Day", "rate(2 days)"),
    ],
)
def test_it_translates_rates(rate, expression):
    assert rate_to_eventbridge(rate) == expression


@pytest.mark.parametrize("rate", ["30 seconds", "0 minutes", "1 second"])
def test_it_refuses_a_rate_under_a_minute(rate):
    with pytest.raises(ExpressionError, match="at least 1 minute"):
        rate_to_eventbridge(rate)


@pytest.mark.parametrize("rate", ["5", "minutes", "1.5 hours", "-1 hour", "2 weeks"])
def test_it_refuses_a_malformed_rate(rate):
    with pytest.raises(ExpressionError, match="a number and a unit"):
        rate_to_eventbridge(rate)


def test_it_describes_schedules_in_words_with_the_timezone():
    assert (
        describe(cron="0 9 * * MON-FRI", rate=None, timezone="Europe/Paris")
        == "At 09:00, Monday through Friday (Europe/Paris)"
    )
    assert describe(cron="*/15 * * * *", rate=None, timezone="UTC") == "Every 15 minutes (UTC)"
    assert describe(cron=None, rate="1 hour", timezone="UTC") == "Every hour (UTC)"
    assert describe(cron=None, rate="5 minutes", timezone="UTC") == "Every 5 minutes (UTC)"


# --- when they fire -------------------------------------------------------------------


def test_it_fires_a_weekday_cron_in_its_timezone():
    # 2026-12-04 is a Friday; Paris is UTC+1 in winter.
    assert times("cron(0 9 ? * MON-FRI *)", "Europe/Paris", utc(2026, 12, 4, 9), 3) == [
        utc(2026, 12, 7, 8),
        utc(2026, 12, 8, 8),
        utc(2026, 12, 9, 8),
    ]


def test_it_skips_a_time_the_spring_change_skips_in_paris():
    # 2026-03-29: 02:00 becomes 03:00 in Paris; 02:30 does not exist that day.
    assert times("cron(30 2 * * ? *)", "Europe/Paris", utc(2026, 3, 28), 3) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST; none on the 29th
        utc(2026, 3, 31, 0, 30),
    ]


def test_it_runs_a_time_the_autumn_change_repeats_once_in_paris():
    # 2026-10-25: 03:00 becomes 02:00 again; 02:30 happens twice, runs once.
    assert times("cron(30 2 * * ? *)", "Europe/Paris", utc(2026, 10, 24), 3) == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST), not the second (01:30 UTC)
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]


def test_it_skips_the_missing_hour_in_new_york_in_spring():
    # 2026-03-08: 02:00 EST becomes 03:00 EDT.
    assert times("cron(0/30 * * * ? *)", "America/New_York", utc(2026, 3, 8, 6), 3) == [
        utc(2026, 3, 8, 6, 30),  # 01:30 EST
        utc(2026, 3, 8, 7, 0),  # 03:00 EDT: 02:00 and 02:30 do not exist
        utc(2026, 3, 8, 7, 30),
    ]


def test_it_runs_the_repeated_hour_once_in_new_york_in_autumn():
    # 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:00 and 01:30 run once each.
    assert times("cron(0/30 * * * ? *)", "America/New_York", utc(2026, 11, 1, 4, 45), 4) == [
        utc(2026, 11, 1, 5, 0),  # 01:00 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT
        utc(2026, 11, 1, 7, 0),  # 02:00 EST; not 01:00 and 01:30 EST again
        utc(2026, 11, 1, 7, 30),
    ]


def test_it_keeps_counting_from_inside_the_repeated_hour():
    # Asked during the second 01:xx (EST): the 01:30 wall time already ran.
    assert times("cron(30 * * * ? *)", "America/New_York", utc(2026, 11, 1, 6, 10), 1) == [
        utc(2026, 11, 1, 7, 30)  # 02:30 EST
    ]


def test_it_keeps_a_daily_time_across_both_changes_in_new_york():
    spring = times("cron(0 9 * * ? *)", "America/New_York", utc(2026, 3, 7), 2)
    assert spring == [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13)]  # 09:00 EST, then EDT
    autumn = times("cron(0 9 * * ? *)", "America/New_York", utc(2026, 10, 31), 2)
    assert autumn == [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14)]


def test_it_fires_rates_from_their_anchor_within_start_and_end():
    anchor = utc(2026, 1, 1, 12, 0)
    assert times("rate(5 minutes)", "UTC", utc(2026, 1, 1, 12, 7), 2, anchor=anchor) == [
        utc(2026, 1, 1, 12, 10),
        utc(2026, 1, 1, 12, 15),
    ]
    assert times("rate(1 hour)", "UTC", utc(2025, 1, 1), 2, start=anchor) == [
        anchor,
        utc(2026, 1, 1, 13),
    ]
    assert times(
        "rate(1 hour)", "UTC", utc(2026, 1, 1, 12), 5, start=anchor, end=utc(2026, 1, 1, 14)
    ) == [utc(2026, 1, 1, 13)]


def test_it_honours_start_inclusive_and_end_exclusive_for_cron():
    assert times(
        "cron(0 * * * ? *)",
        "UTC",
        utc(2026, 1, 1),
        5,
        start=utc(2026, 1, 1, 3),
        end=utc(2026, 1, 1, 5),
    ) == [utc(2026, 1, 1, 3), utc(2026, 1, 1, 4)]


def test_it_finds_the_previous_time():
    assert previous_fire_time("cron(* * * * ? *)", "UTC", before=utc(2026, 1, 1, 12, 0, 30)) == utc(
        2026, 1, 1, 12, 0
    )
    assert previous_fire_time("cron(30 2 * * ? *)", "Europe/Paris", before=utc(2026, 3, 30)) == utc(
        2026, 3, 28, 1, 30
    )  # none on the 29th
    assert previous_fire_time(
        "rate(5 minutes)",
        "UTC",
        before=utc(2026, 1, 1, 12, 7),
        window=Window(anchor=utc(2026, 1, 1, 12)),
    ) == utc(2026, 1, 1, 12, 5)
    assert (
        previous_fire_time(
            "cron(* * * * ? *)", "UTC", before=utc(2026, 1, 1), window=Window(start=utc(2026, 2, 1))
        )
        is None
    )


def test_it_does_not_use_cronsims_own_dst_handling_which_differs_from_eventbridges():
    # Why fire_times walks naive wall-clock times: given an aware start,
    # cronsim follows Debian cron, running a skipped 02:30 at 03:00 (CEST),
    # where EventBridge Scheduler skips it.
    from zoneinfo import ZoneInfo

    from cronsim import CronSim

    paris = ZoneInfo("Europe/Paris")
    debian = next(CronSim("30 2 * * *", datetime(2026, 3, 29, 0, 0, tzinfo=paris)))
    assert debian.astimezone(UTC) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST on the 29th
    assert times("cron(30 2 * * ? *)", "Europe/Paris", utc(2026, 3, 28, 23), 1) == [
        utc(2026, 3, 30, 0, 30)
    ]
