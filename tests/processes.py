"""Which processes are alive, through `ps` (Linux and macOS alike): for the
tests that check the local mode leaves none behind."""

from __future__ import annotations

import subprocess


def _ps(*columns: str) -> list[list[str]]:
    fields = ",".join(f"{column}=" for column in columns)
    listing = subprocess.run(
        ["ps", "-A", "-ww", "-o", fields], capture_output=True, text=True, check=True
    ).stdout
    return [line.split(None, len(columns) - 1) for line in listing.splitlines() if line.strip()]


def processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, state)."""
    return {int(pid): (int(ppid), state) for pid, ppid, state in _ps("pid", "ppid", "stat")}


def descendants(root: int) -> set[int]:
    """root and every process below it."""
    table = processes()
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = {pid for pid, (ppid, _) in table.items() if ppid == parent}
        frontier.extend(children - found)
        found |= children
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of pids still running. A zombie has exited: only its parent has
    yet to collect it."""
    table = processes()
    return {pid for pid in pids if pid in table and not table[pid][1].startswith("Z")}


def command_lines() -> list[str]:
    return [args for (args,) in _ps("args")]
