"""Tests start the local mode through the same helper as the benchmark and
`make webhook`."""

from __future__ import annotations

from tasks.localmode.process import LocalStack, free_port, start_local

__all__ = ["LocalStack", "free_port", "start_local"]
