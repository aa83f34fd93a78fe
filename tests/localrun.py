"""Tests start the local mode through the same helper as the benchmark and
`make webhook`."""

from __future__ import annotations

from tasks.localmode.process import LocalRun, free_port, start_local

__all__ = ["LocalRun", "free_port", "start_local"]
