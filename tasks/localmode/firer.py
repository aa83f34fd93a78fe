"""A local stand-in for EventBridge Scheduler's firing of schedules, one-time
and recurring (cron/rate, see localmode/recurrence.py).

It learns the schedules the app created through the boto3 'scheduler' API
(their definitions: expression, timezone, Target Input, RetryPolicy,
ActionAfterCompletion, State) from a source (sources.py: the local endpoint's
change feed in runlocal), and at each schedule's time invokes the executor
with the Target Input, as Lambda would, in a bounded worker pool. A fired
schedule with ActionAfterCompletion DELETE is deleted a moment later; others
stay, and fire again if `next_fire` gives them another time. It fires at the
scheduled second, or with SCHEDULER_LOCAL_PRECISION=minute anywhere in its
minute as EventBridge may (localmode/precision.py); schedules that came due
while nothing was running fire as soon as it starts (a recurring one: its most
recent missed time, once).

Two threads: `feed` keeps `self.schedules` current from the source; `firer`
sleeps until the next schedule is due (or the feed wakes it) and fires.
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

from tasks.localmode import crowd, precision, recurrence
from tasks.localmode.invokers import ThreadInvoker, invoke_command
from tasks.localmode.sources import Change, ListingSource

logger = logging.getLogger("localmode.firer")

DELETE_DELAY_SECONDS = 1.0
IDLE_WAKE_SECONDS = 60.0
# A recurring schedule's invocation makes its occurrence's task (two more
# requests) before the claim: it starts this much earlier still.
RECURRING_EXTRA_LEAD = 0.25


@dataclass(order=True)
class Due:
    at: float  # the scheduled time (epoch seconds)
    start: float = field(compare=False)  # when to invoke: `at`, less the lead
    name: str = field(compare=False)
    event: dict = field(compare=False)
    delete_after: bool = field(compare=False)
    retries: int = field(compare=False)
    definition: dict = field(compare=False, repr=False, default_factory=dict)
    # A recurring schedule's definition (GetSchedule's answer), else None.
    recurring: dict | None = field(compare=False, repr=False, default=None)


def parse_at(expression: str, timezone: str | None) -> float:
    """`at(yyyy-mm-ddThh:mm:ss)` -> epoch seconds."""
    if not (expression.startswith("at(") and expression.endswith(")")):
        raise ValueError(f"not a one-time schedule: {expression}")
    when = datetime.fromisoformat(expression[3:-1])
    if timezone not in (None, "UTC"):
        from zoneinfo import ZoneInfo

        return when.replace(tzinfo=ZoneInfo(timezone)).timestamp()
    return when.replace(tzinfo=UTC).timestamp()


def next_fire(definition: dict, after: float | None = None) -> float | None:
    """When a schedule next fires (epoch seconds), strictly after `after` (a
    time it fired at), or None when never again. A one-time schedule fires
    once, at its time, however late it is found: a missed one fires at once.
    A recurring one, found afresh, fires at its most recent time missed since
    it was last changed (once), else at its next time."""
    expression = definition["ScheduleExpression"]
    if recurrence.is_recurring(expression):
        when = recurrence.first_fire(definition, now=datetime.now(UTC))
        if when is not None and after is not None and when.timestamp() <= after:
            when = recurrence.next_fire(definition, after=datetime.fromtimestamp(after, UTC))
        return None if when is None else when.timestamp()
    at = parse_at(expression, definition.get("ScheduleExpressionTimezone"))
    # SCHEDULER_LOCAL_PRECISION=minute: anywhere in its minute, as EventBridge may.
    at = precision.fire_at(at, key=definition.get("Name", ""))
    if after is not None and at <= after:
        return None
    return at


def _event(definition: dict, at: float) -> dict:
    if recurrence.is_recurring(definition["ScheduleExpression"]):
        return recurrence.event(definition, datetime.fromtimestamp(at, UTC))
    return json.loads(definition["Target"].get("Input") or "{}")


def due_from(definition: dict, after: float | None = None) -> Due | None:
    """The next firing of a definition; None if disabled, done or unreadable."""
    name = definition.get("Name", "?")
    if definition.get("State", "ENABLED") != "ENABLED":
        return None
    try:
        at = next_fire(definition, after)
        event = _event(definition, at) if at is not None else {}
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("schedule %s skipped: %s", name, exc)
        return None
    if at is None:
        return None
    recurring = recurrence.is_recurring(definition["ScheduleExpression"])
    return Due(
        at=at,
        start=at,
        name=name,
        event=event,
        delete_after=definition.get("ActionAfterCompletion") == "DELETE" and not recurring,
        retries=definition["Target"].get("RetryPolicy", {}).get("MaximumRetryAttempts", 0),
        definition=definition,
        recurring=definition if recurring else None,
    )


class Firer:
    def __init__(
        self,
        *,
        client: Any,
        group: str,
        source: Any = None,
        poll_interval: float = 0.25,
        invoke: Any = invoke_command,
        workers: int = 64,
        timeout: float = 60.0,
        lead_base: float = crowd.LEAD_BASE_SECONDS,
        lead_per_task: float = crowd.LEAD_PER_TASK_SECONDS,
        pacer: Any = None,
    ) -> None:
        self.client = client
        self.group = group
        self.source = source or ListingSource(client, group, poll_interval)
        # Invocations start a little before their second, more when many share
        # it, so that the stand-in's own throughput does not make them late.
        # The executor claims the task then, and holds the delivery until it is
        # due (it never sends early).
        self.lead_base = lead_base
        self.lead_per_task = lead_per_task
        self.crowd: collections.Counter[int] = collections.Counter()
        # The executor refuses a claim earlier than its claim window.
        self.max_lead = crowd.max_lead()
        self.invoker = ThreadInvoker(invoke, workers=workers, timeout=timeout, pacer=pacer)
        self.schedules: dict[str, Due] = {}  # the next firing of each schedule
        self.fired: dict[str, float] = {}  # name -> the time it last fired for
        self.heap: list[Due] = []  # stale entries (replaced, deleted) are skipped
        self.changed = threading.Condition()
        self.synced = threading.Event()  # the first full read is done
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._fire_loop, name="firer", daemon=True)
        self.feeder = threading.Thread(target=self._feed_loop, name="feed", daemon=True)
        self.deletions: queue.Queue = queue.Queue()
        self.deleter = threading.Thread(target=self._delete_fired, name="deleter", daemon=True)

    @property
    def armed(self) -> dict[str, Due]:
        """The next firing of each schedule."""
        return self.schedules

    @property
    def known(self) -> set[str]:
        return set(self.schedules)

    def start(self) -> None:
        self.feeder.start()
        self.thread.start()
        self.deleter.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop firing; let running invocations finish (up to `timeout`:
        an invocation's webhook is bounded by its own timeout)."""
        self.stop_event.set()
        with self.changed:
            self.changed.notify_all()
        if self.thread.is_alive():
            self.thread.join(timeout=1)
        self.invoker.stop(timeout)
        self.deletions.put((0.0, None))
        if self.deleter.is_alive():
            self.deleter.join(timeout=1)
        self.source.close()

    # --- learning the schedules ---------------------------------------------

    def poll(self) -> None:
        """One round: everything at first (and after the source lost track),
        then what changed."""
        if not self.synced.is_set():
            self._replace_all(self.source.read_all())
            self.synced.set()
            return
        changes = self.source.changes()
        if changes is None:
            self.synced.clear()
        else:
            self._apply(changes)

    def _feed_loop(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            try:
                self.poll()
                if failures:
                    logger.warning("reading the schedules again")
                failures = 0
            except Exception as exc:
                if self.stop_event.is_set():
                    return
                if not failures:  # once per outage, not at every try
                    logger.warning("cannot read the schedules (%s); retrying", exc)
                failures += 1
                self.synced.clear()  # whatever changed meanwhile: read it all
                self.stop_event.wait(min(0.1 * 2**failures, 2.0))

    def _replace_all(self, definitions: list[dict]) -> None:
        with self.changed:
            self.schedules.clear()
            self.heap.clear()
            self.crowd.clear()
            names = {d.get("Name") for d in definitions}
            self.fired = {n: at for n, at in self.fired.items() if n in names}
            for definition in definitions:
                self._upsert(definition)
            self.changed.notify_all()

    def _apply(self, changes: list[Change]) -> None:
        with self.changed:
            for name, definition in changes:
                if definition is None:
                    self._forget(name)
                    self.fired.pop(name, None)
                else:
                    self._upsert(definition)
            self.changed.notify_all()

    def _upsert(self, definition: dict) -> None:
        """The caller holds self.changed."""
        name = definition["Name"]
        self._forget(name)
        due = due_from(definition, after=self.fired.get(name))
        if due is None:
            return
        self.crowd[int(due.at)] += 1
        due.start = due.at - self._lead(due)
        self.schedules[name] = due
        heapq.heappush(self.heap, due)

    def _forget(self, name: str) -> None:
        old = self.schedules.pop(name, None)
        if old is not None:
            self.crowd[int(old.at)] -= 1

    def _lead(self, due: Due) -> float:
        lead = self.lead_base + self.lead_per_task * self.crowd[int(due.at)]
        if due.recurring is not None:
            lead += RECURRING_EXTRA_LEAD  # the executor first makes the occurrence
        return min(lead, self.max_lead)

    # --- firing ---------------------------------------------------------------

    def _fire_loop(self) -> None:
        while not self.stop_event.is_set():
            with self.changed:
                jobs, wake = self._take_due(time.time())
            if jobs:
                self.invoker.submit(jobs, self._completed)
                continue
            with self.changed:
                if not self.stop_event.is_set():
                    self.changed.wait(max(0.0, wake - time.time()))

    def _take_due(self, now: float) -> tuple[list, float]:
        """Pop what is due (its lead counted with the crowd as it is now);
        the caller holds self.changed. Returns the jobs and when to look again."""
        jobs = []
        while self.heap:
            due = self.heap[0]
            if self.schedules.get(due.name) is not due:
                heapq.heappop(self.heap)  # replaced or deleted meanwhile
                continue
            if due.at - self._lead(due) > now:
                return jobs, due.at - self._lead(due)
            heapq.heappop(self.heap)
            self._fired(due)
            logger.debug("firing %s (due %.3f, %.3f s ahead)", due.name, due.at, due.at - now)
            jobs.append((due.name, due.event, due.retries, due.delete_after, due.at))
        return jobs, now + IDLE_WAKE_SECONDS

    def _fired(self, due: Due) -> None:
        """Recurring schedules stay, with their next time; one-time ones are
        remembered as fired so a re-read does not fire them again."""
        # Not _forget: the crowd of this second keeps its count, so the rest
        # of it keeps the same lead.
        self.schedules.pop(due.name, None)
        self.fired[due.name] = due.at
        try:
            following = due_from(due.definition, after=due.at)
        except Exception:  # never let one schedule stop the firing
            logger.exception("schedule %s: could not arm it again", due.name)
            following = None
        if following is not None:
            self.crowd[int(following.at)] += 1
            following.start = following.at - self._lead(following)
            self.schedules[due.name] = following
            heapq.heappush(self.heap, following)
        self._trim_crowd(due.at)

    def _trim_crowd(self, now: float) -> None:
        if len(self.crowd) > 1000:
            for second in [s for s, n in self.crowd.items() if s < now - 60 or n <= 0]:
                del self.crowd[second]

    def _completed(self, name: str, delete_after: bool) -> None:
        if delete_after:
            # EventBridge deletes a completed one-time schedule in its own
            # time; done here a moment later, off the busy instant.
            self.deletions.put((time.time() + DELETE_DELAY_SECONDS, name))

    def _delete_fired(self) -> None:
        while True:
            when, name = self.deletions.get()
            if name is None:
                return
            # At stop the rest is left: a schedule that fires again into a
            # finished task changes nothing (the executor's claim fails).
            if self.stop_event.wait(max(0.0, when - time.time())):
                return
            try:
                self.client.delete_schedule(Name=name, GroupName=self.group)
            except self.client.exceptions.ResourceNotFoundException:
                pass
            except Exception as exc:
                logger.warning("could not delete fired schedule %s: %s", name, exc)
