"""The local endpoint's write-ahead journal: every mutating request that was
answered with success, appended and fsync'd before its answer is sent.

Files in the state folder: `aws.pickle` (the last snapshot, which names the
first journal generation not in it) and `aws.journal.<generation>`. A
snapshot starts a new generation; older journals are deleted once the
snapshot is safely on disk. At start: the snapshot, then every journal from
its generation on, replayed in order.

Each record is length-prefixed and CRC-checked: a record torn by a crash
mid-write (never answered, so never acknowledged) ends the replay.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("localmode.aws")

HEADER = struct.Struct(">II")  # length, crc32


def encode(record: dict) -> bytes:
    payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: Path) -> Iterator[dict]:
    data = path.read_bytes()
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        payload = data[offset + HEADER.size : offset + HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            logger.warning("%s: torn record at byte %s (a crash mid-write): ignored", path, offset)
            return
        yield pickle.loads(payload)
        offset += HEADER.size + length


def journal_path(state_file: Path, generation: int) -> Path:
    return state_file.with_name(f"{state_file.name}.journal.{generation}")


def journals_from(state_file: Path, generation: int) -> list[tuple[int, Path]]:
    """The journal files of this generation and later, oldest first."""
    prefix = f"{state_file.name}.journal."
    found = []
    for path in state_file.parent.glob(prefix + "*"):
        suffix = path.name[len(prefix) :]
        if suffix.isdigit() and int(suffix) >= generation:
            found.append((int(suffix), path))
    return sorted(found)


def fsync_folder(folder: Path) -> None:
    """A rename or a new file is durable once its folder is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Appends (under the endpoint's request lock, so in the order the
    requests were applied) and group-commits the fsyncs (outside it): one
    fsync covers every record written before it started, so concurrent
    requests share the wait instead of queueing for one fsync each."""

    def __init__(self, state_file: Path, generation: int) -> None:
        self.state_file = state_file
        self.generation = generation
        self.fd = self._open(generation)
        self.written = 0  # records appended, across generations
        self.synced = 0  # records known to be on disk
        self.records_in_generation = 0
        self._sync = threading.Condition()
        self._syncing = False

    def _open(self, generation: int) -> int:
        fd = os.open(
            journal_path(self.state_file, generation), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        fsync_folder(self.state_file.parent)
        return fd

    def append(self, record: dict) -> int:
        """Write one record (the caller holds the request lock); returns the
        number to pass to wait_durable. Raises OSError if it cannot."""
        data = encode(record)
        written = os.write(self.fd, data)
        if written != len(data):
            raise OSError(f"short write to the journal ({written} of {len(data)} bytes)")
        self.written += 1
        self.records_in_generation += 1
        return self.written

    def wait_durable(self, number: int) -> None:
        """Return once record `number` is on disk (fsync'd)."""
        with self._sync:
            while self.synced < number:
                if self._syncing:
                    self._sync.wait()
                    continue
                self._syncing, target, fd = True, self.written, self.fd
                self._sync.release()
                try:
                    os.fsync(fd)
                finally:
                    self._sync.acquire()
                    self._syncing = False
                    self._sync.notify_all()
                self.synced = max(self.synced, target)

    def rotate(self) -> int:
        """Start the next generation (the caller holds the request lock).
        Returns the generation a snapshot taken now replaces up to. Raises
        OSError, keeping the current file, if the new one cannot be made."""
        new_fd = self._open(self.generation + 1)
        old_fd, self.fd = self.fd, new_fd
        with self._sync:
            while self._syncing:
                self._sync.wait()
            os.fsync(old_fd)
            self.synced = self.written
        os.close(old_fd)
        self.generation += 1
        self.records_in_generation = 0
        return self.generation

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)
