"""The local endpoint's change feed of schedules, for the local stand-in
that fires them (firer.py).

Listing every schedule on each poll costs in proportion to the schedules
pending (moto sorts them all for each page). Instead the endpoint numbers each
scheduler mutation and serves, on a private path:

- `GET /_local/schedules`: every schedule with its definition (as
  GetSchedule returns it), and the feed's position;
- `GET /_local/schedules?since=N&epoch=E&wait=S`: the changes after N, held
  up to S seconds until there is one (a long poll). `{"reset": true}` when the
  feed cannot answer from N (another epoch: the endpoint restarted; changes
  trimmed; a schedule group deleted): read everything again.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any
from urllib.parse import parse_qs

KEEP_CHANGES = 50_000


def _scheduler_backends() -> Any:
    from moto.scheduler.models import scheduler_backends

    return scheduler_backends


def all_schedules() -> list[dict]:
    found = []
    for regions in _scheduler_backends().values():
        for backend in regions.values():
            for group in backend.schedule_groups.values():
                found.extend(schedule.to_dict() for schedule in group.schedules.values())
    return found


def find_schedule(group: str, name: str) -> dict | None:
    for regions in _scheduler_backends().values():
        for backend in regions.values():
            found = backend.schedule_groups.get(group)
            if found is not None and name in found.schedules:
                return found.schedules[name].to_dict()
    return None


def _group_and_name(environ: dict, body: bytes) -> tuple[str, str]:
    name = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    group = (query.get("groupName") or [None])[0]
    if group is None and body:
        try:
            group = json.loads(body).get("GroupName")
        except (ValueError, AttributeError):
            group = None
    return group or "default", name


class ScheduleFeed:
    def __init__(self) -> None:
        self.epoch = uuid.uuid4().hex
        self.seq = 0
        # Consecutive seqs: changes[i] has seq first + i, so a read from any
        # seq is a slice, whatever the history's length.
        self.changes: list[dict] = []
        self.first = 1
        self.changed = threading.Condition()

    def observe(self, environ: dict, body: bytes) -> None:
        """After a successful mutating request (the caller holds the request
        lock, so the state read here is the one it left)."""
        path = environ.get("PATH_INFO", "")
        if path.startswith("/schedule-groups/"):
            self._reset()
        elif path.startswith("/schedules/"):
            group, name = _group_and_name(environ, body)
            self._append({"group": group, "name": name, "schedule": find_schedule(group, name)})

    def _append(self, change: dict) -> None:
        with self.changed:
            self.seq += 1
            self.changes.append({"seq": self.seq, **change})
            if len(self.changes) > 2 * KEEP_CHANGES:
                del self.changes[:KEEP_CHANGES]
                self.first += KEEP_CHANGES
            self.changed.notify_all()

    def _reset(self) -> None:
        with self.changed:
            self.epoch = uuid.uuid4().hex
            self.changes.clear()
            self.first = self.seq + 1
            self.changed.notify_all()

    def everything(self, lock: threading.Lock) -> dict:
        with lock:  # a consistent view: no mutation in between
            schedules = all_schedules()
            with self.changed:
                return {"epoch": self.epoch, "seq": self.seq, "schedules": schedules}

    def since(self, epoch: str, seq: int, wait: float) -> dict:
        with self.changed:
            if epoch == self.epoch and seq == self.seq:
                self.changed.wait_for(lambda: epoch != self.epoch or self.seq > seq, wait)
            if epoch != self.epoch or seq > self.seq or seq + 1 < self.first:
                return {"reset": True, "epoch": self.epoch, "seq": self.seq}
            changes = self.changes[seq + 1 - self.first :]
            return {"epoch": self.epoch, "seq": self.seq, "changes": changes}
