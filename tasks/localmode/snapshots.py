"""The local endpoint's snapshots: moto's tables, schedules and queues,
pickled; and the Saver that compacts the journal into them, retrying and
reporting (never dropping) a snapshot it cannot write."""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any

from tasks.localmode import sqsstate
from tasks.localmode.journal import fsync_folder, journals_from

logger = logging.getLogger("localmode.aws")

COMPACT_RECORDS = 5000  # journal records that call for a snapshot
# ... or this long after the first of them (tests shorten it)
COMPACT_SECONDS = float(os.environ.get("SCHEDULER_LOCAL_COMPACT_SECONDS", "10"))
RETRY_MAX_SECONDS = 5.0


def _backends() -> dict[str, tuple[Any, tuple[str, ...]]]:
    """Each service's backends and the attributes that hold its state."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.scheduler.models import scheduler_backends

    return {
        "dynamodb": (dynamodb_backends, ("tables",)),
        "scheduler": (scheduler_backends, ("schedules", "schedule_groups")),
    }


def snapshot(generation: int) -> bytes:
    """Every account's and region's state; `generation` is the first journal
    it does not contain."""
    state: dict = {"generation": generation}
    for service, (backends, attributes) in _backends().items():
        state[service] = {
            (account, region): tuple(getattr(backend, a) for a in attributes)
            for account, regions in backends.items()
            for region, backend in regions.items()
        }
    state["sqs"] = sqsstate.sqs_state()  # the local dead-letter queue, as plain data
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def restore(blob: bytes) -> int:
    state = pickle.loads(blob)
    for service, (backends, attributes) in _backends().items():
        for (account, region), values in state.get(service, {}).items():
            if not isinstance(values, tuple):  # an older snapshot's tables
                values = (values,)
            for attribute, value in zip(attributes, values, strict=True):
                setattr(backends[account][region], attribute, value)
    sqsstate.restore_sqs(state.get("sqs", {}))
    return state.get("generation", 0)


def load(state_file: Path) -> tuple[int, bool]:
    """(the first journal generation to replay, whether a snapshot loaded)."""
    if not state_file.exists():
        return 0, False
    try:
        return restore(state_file.read_bytes()), True
    except Exception:  # an unreadable snapshot must not block starting
        logger.exception("could not load %s; starting from the journal alone", state_file)
        return 0, False


def journals_after(state_file: Path, generation: int) -> list[tuple[int, Path]]:
    return journals_from(state_file, generation)


def next_generation(state_file: Path) -> int:
    """A fresh journal file: never append after a torn record."""
    existing = journals_from(state_file, 0)
    return existing[-1][0] + 1 if existing else 1


def write_atomically(path: Path, blob: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(blob)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fsync_folder(path.parent)


class Saver:
    """Compacts the journal into a snapshot now and then, and at stop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.wanted = False  # a snapshot is needed whatever the journal holds
        self.problem: str | None = None
        self.since: float | None = None
        self.first_record_at: float | None = None
        self.stopping = threading.Event()

    def health(self) -> dict:
        return {"ok": self.problem is None, "problem": self.problem, "since": self.since}

    def journal_failed(self, exc: OSError) -> None:
        self.wanted = True
        self._report(f"could not write the journal: {exc}")

    def _report(self, problem: str) -> None:
        if self.problem != problem:
            logger.error("%s (%s); retrying", problem, self.app.state_file)
        self.problem = problem
        self.since = self.since or time.time()

    def _due(self) -> bool:
        records = self.app.journal.records_in_generation if self.app.journal else 0
        if not records:
            self.first_record_at = None
            return self.wanted
        self.first_record_at = self.first_record_at or time.monotonic()
        waited = time.monotonic() - self.first_record_at
        return self.wanted or records >= COMPACT_RECORDS or waited >= COMPACT_SECONDS

    def run(self) -> None:
        delay = 1.0
        while not self.stopping.wait(delay):
            if not self._due() and self.problem is None:
                delay = 1.0
                continue
            delay = 1.0 if self.compact() else min(RETRY_MAX_SECONDS, delay * 2)

    def compact(self) -> bool:
        """Snapshot the state and start a new journal; older journals go once
        the snapshot is on disk. False (reported) if it could not."""
        state_file = self.app.state_file
        try:
            with self.app.lock:
                generation = self.app.journal.rotate()
                blob = snapshot(generation)
                self.wanted = False
            self.first_record_at = None
            write_atomically(state_file, blob)
            for old_generation, old in journals_from(state_file, 0):
                if old_generation < generation:
                    old.unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - reported and retried, never dropped
            self.wanted = True
            self._report(f"could not save the local AWS state: {exc}")
            return False
        if self.problem:
            logger.warning("the local AWS state is saved again (%s)", state_file)
        self.problem = self.since = None
        return True

    def final(self) -> None:
        """At stop: a last snapshot, tried a few times."""
        self.stopping.set()
        for _ in range(3):
            if self.compact():
                self.app.journal.close()
                return
            time.sleep(0.2)
        logger.error("the last snapshot failed; the journal keeps every answered write")
