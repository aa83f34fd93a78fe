"""A local stand-in for EventBridge Scheduler's firing of one-time schedules.

It reads the schedules the app created through the same boto3 'scheduler'
API the app uses on AWS, and at each schedule's time invokes the executor
with the schedule's Target Input, as Lambda would, in a bounded worker pool.
After a schedule fires it is deleted (ActionAfterCompletion DELETE); a
recurring one (cron/rate, see localmode/recurrence.py) is armed again for its
next time. A one-time schedule fires at its second, or with
SCHEDULER_LOCAL_PRECISION=minute anywhere in its minute as EventBridge may
(localmode/precision.py); schedules that came due while nothing was running
fire as soon as it starts (a recurring one: its most recent missed time, once).
"""

from __future__ import annotations

import collections
import heapq
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tasks.localmode import precision, recurrence
from tasks.localmode.invokers import ThreadInvoker, invoke_command
from tasks.models import CLAIM_EARLY_SECONDS

logger = logging.getLogger("localmode.firer")

DELETE_DELAY_SECONDS = 1.0
# No reading of the schedules from this long before to this long after a
# second at which fired invocations are due.
CROWD_QUIET_BEFORE = 0.3
CROWD_QUIET_AFTER = 0.5
# A recurring schedule's invocation makes its occurrence's task (two more
# requests) before the claim: it starts this much earlier still.
RECURRING_EXTRA_LEAD = 0.25


@dataclass(order=True)
class Due:
    start: float  # when to invoke: `at`, less the lead for a crowded second
    at: float = field(compare=False)
    name: str = field(compare=False)
    event: dict = field(compare=False)
    delete_after: bool = field(compare=False)
    retries: int = field(compare=False)
    # A recurring schedule's GetSchedule answer: to arm it again after firing.
    recurring: dict | None = field(compare=False, default=None)


def parse_at(expression: str, timezone: str | None) -> float:
    """`at(yyyy-mm-ddThh:mm:ss)` -> epoch seconds."""
    if not (expression.startswith("at(") and expression.endswith(")")):
        raise ValueError(f"not a one-time schedule: {expression}")
    when = datetime.fromisoformat(expression[3:-1])
    if timezone not in (None, "UTC"):
        from zoneinfo import ZoneInfo

        return when.replace(tzinfo=ZoneInfo(timezone)).timestamp()
    return when.replace(tzinfo=UTC).timestamp()


class Firer:
    def __init__(
        self,
        *,
        client: Any,
        group: str,
        poll_interval: float = 0.25,
        invoke: Any = invoke_command,
        workers: int = 64,
        timeout: float = 60.0,
        lead_base: float = 0.25,
        lead_per_task: float = 0.015,
    ) -> None:
        self.client = client
        self.group = group
        self.poll_interval = poll_interval
        # Invocations start a little before their second, more when many share
        # it, so that the stand-in's own throughput does not make them late.
        # The executor claims the task then, and holds the delivery until it is
        # due (it never sends early).
        self.lead_base = lead_base
        self.lead_per_task = lead_per_task
        self.crowd: collections.Counter[int] = collections.Counter()
        # The executor refuses a claim earlier than this before the due time.
        self.max_lead = CLAIM_EARLY_SECONDS - 1.0
        self.invoker = ThreadInvoker(invoke, workers=workers, timeout=timeout)
        self.heap: list[Due] = []
        self.known: set[str] = set()
        self.fired: set[str] = set()
        self.delete_after: dict[str, bool] = {}
        self.fired_at: set[float] = set()
        # The one armed Due per schedule (older ones, from before it changed,
        # are dropped when they come up), and each recurring schedule's
        # LastModificationDate as read and as listed: a changed one is read
        # again. (One-time schedules are never changed: a retry is a new one.)
        self.armed: dict[str, Due] = {}
        self.read_modified: dict[str, Any] = {}
        self.listed_modified: dict[str, Any] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="firer", daemon=True)
        self.deletions: queue.Queue = queue.Queue()
        self.deleter = threading.Thread(target=self._delete_fired, name="deleter", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.deleter.start()

    def stop(self) -> None:
        """Stop firing; wait for running invocations to finish."""
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.invoker.stop()
        if self.deleter.is_alive():
            self.deletions.put((0.0, None))
            self.deleter.join(timeout=10)

    # --- reading schedules ----------------------------------------------------

    def _list_names(self) -> set[str]:
        from botocore.exceptions import ClientError

        for _ in range(3):
            names: set[str] = set()
            kwargs: dict = {"GroupName": self.group, "State": "ENABLED", "MaxResults": 100}
            try:
                while True:
                    page = self.client.list_schedules(**kwargs)
                    for summary in page.get("Schedules", []):
                        names.add(summary["Name"])
                        if summary["Name"] in self.read_modified:
                            modified = summary.get("LastModificationDate")
                            self.listed_modified[summary["Name"]] = modified
                    if not page.get("NextToken"):
                        return names
                    kwargs["NextToken"] = page["NextToken"]
            except ClientError as exc:
                # A page token goes stale when its schedule is deleted
                # meanwhile: list again from the start.
                if exc.response["Error"]["Code"] != "InvalidToken":
                    raise
        raise RuntimeError("the schedule listing kept changing")

    def _read(self, name: str) -> Due | None:
        try:
            schedule = self.client.get_schedule(Name=name, GroupName=self.group)
        except self.client.exceptions.ResourceNotFoundException:
            return None
        recurring = recurrence.is_recurring(schedule["ScheduleExpression"])
        if recurring:
            self.read_modified[name] = self.listed_modified[name] = schedule.get(
                "LastModificationDate"
            )
        try:
            if recurring:
                when = recurrence.first_fire(schedule, now=datetime.now(UTC))
                if when is None:
                    return None  # ended (EndDate)
                at, event = when.timestamp(), recurrence.event(schedule, when)
            else:
                at = parse_at(
                    schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone")
                )
                # SCHEDULER_LOCAL_PRECISION=minute: anywhere in its minute.
                at = precision.fire_at(at)
                event = json.loads(schedule["Target"].get("Input") or "{}")
        except (ValueError, KeyError) as exc:
            logger.warning("schedule %s skipped: %s", name, exc)
            return None
        retries = schedule["Target"].get("RetryPolicy", {}).get("MaximumRetryAttempts", 0)
        return Due(
            start=at,
            at=at,
            name=name,
            event=event,
            delete_after=schedule.get("ActionAfterCompletion") == "DELETE",
            retries=retries,
            recurring=schedule if recurring else None,
        )

    def poll(self) -> None:
        names = self._list_names()
        changed = {
            name
            for name, modified in self.read_modified.items()
            if name in names and self.listed_modified.get(name) != modified
        }
        to_read = (names - self.known - self.fired) | changed
        new = [due for name in to_read if (due := self._read(name))]
        for due in new:
            self.crowd[int(due.at)] += 1
        for due in new:
            self._arm(due)
        # A schedule deleted before it fired (a cancel) is dropped.
        self.known = names
        self.fired &= names
        for kept in (self.armed, self.read_modified, self.listed_modified):
            for name in [n for n in kept if n not in names]:
                del kept[name]

    def _arm(self, due: Due) -> None:
        lead = self.lead_base + self.lead_per_task * self.crowd[int(due.at)]
        if due.recurring is not None:
            # The executor first reads the schedule and puts the occurrence.
            lead += RECURRING_EXTRA_LEAD
        due.start = due.at - min(lead, self.max_lead)
        self.armed[due.name] = due
        heapq.heappush(self.heap, due)

    def _rearm(self, due: Due) -> None:
        """A recurring schedule, fired: armed again for its next time."""
        when = recurrence.next_fire(due.recurring, after=datetime.fromtimestamp(due.at, UTC))
        if when is None:
            return
        at = when.timestamp()
        self.crowd[int(at)] += 1
        again = Due(
            start=at,
            at=at,
            name=due.name,
            event=recurrence.event(due.recurring, when),
            delete_after=False,
            retries=due.retries,
            recurring=due.recurring,
        )
        self._arm(again)

    # --- firing ---------------------------------------------------------------

    def _loop(self) -> None:
        next_poll = 0.0
        while not self.stop_event.is_set():
            now = time.time()
            if now >= next_poll and not self._crowd_due_around(now):
                try:
                    self.poll()
                except Exception:
                    logger.exception("could not read the schedules")
                next_poll = time.time() + self.poll_interval
            self._fire_due()
            wake = next_poll
            if self.heap:
                wake = min(wake, self.heap[0].start)
            self.stop_event.wait(max(0.0, wake - time.time()))

    def _crowd_due_around(self, now: float) -> bool:
        """Whether fired invocations are due about now. Reading the schedules
        then (parsing a long listing) would take the interpreter from their
        deliveries: the next poll waits a moment."""
        self.fired_at = {at for at in self.fired_at if at > now - CROWD_QUIET_AFTER}
        return any(
            now - CROWD_QUIET_AFTER <= at <= now + CROWD_QUIET_BEFORE for at in self.fired_at
        )

    def _fire_due(self) -> None:
        now = time.time()
        jobs = []
        while self.heap and self.heap[0].start <= now:
            due = heapq.heappop(self.heap)
            if due.name not in self.known or self.armed.get(due.name, due) is not due:
                continue  # deleted, paused, or changed since it was armed
            if due.recurring is not None:
                try:
                    self._rearm(due)
                except Exception:  # never let one schedule stop the firing
                    logger.exception("schedule %s: could not arm it again", due.name)
            self.fired.add(due.name)
            self.delete_after[due.name] = due.delete_after
            logger.debug("firing %s (due %.3f, %.3f s ahead)", due.name, due.at, due.at - now)
            jobs.append((due.name, due.event, due.retries))
            self.fired_at.add(due.at)
        if jobs:
            self.invoker.submit(jobs, self._completed)

    def _completed(self, name: str) -> None:
        if self.delete_after.pop(name, False):
            # EventBridge deletes a completed one-time schedule in its own
            # time; done here a moment later, off the busy instant.
            self.deletions.put((time.time() + DELETE_DELAY_SECONDS, name))

    def _delete_fired(self) -> None:
        while True:
            when, name = self.deletions.get()
            if name is None:
                return
            time.sleep(max(0.0, when - time.time()))
            try:
                self.client.delete_schedule(Name=name, GroupName=self.group)
            except self.client.exceptions.ResourceNotFoundException:
                pass
            except Exception:
                logger.exception("could not delete fired schedule %s", name)
