"""How the local stand-in invokes the executor: as Lambda would invoke the
function (the event and a context), each invocation on its own thread from a
bounded pool."""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tasks.localmode.deadletters import dead_letter

logger = logging.getLogger("localmode.invoke")

Done = Callable[[str], None]
Job = tuple[str, dict, int]  # schedule name, event, retries


def started_pool(threads: int) -> ThreadPoolExecutor:
    """A thread pool whose threads all exist already: a crowd of invocations
    is then handed to idle threads, instead of each one starting a thread
    while the ones before it compete for the interpreter."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="invoke")
    barrier = threading.Barrier(threads + 1)
    for _ in range(threads):
        pool.submit(barrier.wait)
    barrier.wait()
    return pool


class LambdaContext:
    """The parts of Lambda's context object that handlers commonly read."""

    def __init__(self, function_name: str, timeout: float) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def invoke_command(event: dict, context: Any) -> Any:
    """Route an event the way Zappa's handler routes a `command` event."""
    module_name, _, function_name = event["command"].rpartition(".")
    function = getattr(importlib.import_module(module_name), function_name)
    return function(event, context)


def invoke_with_retries(
    invoke: Callable[[dict, Any], Any], name: str, event: dict, retries: int, timeout: float
) -> None:
    """One invocation, retried like the schedule's RetryPolicy says."""
    logger.debug("invoking %s at %.3f", name, time.time())
    error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            invoke(dict(event), LambdaContext(f"local-executor:{name}", timeout))
            return
        except Exception as exc:
            error = exc
            logger.exception("invocation of schedule %s failed (try %s)", name, attempt + 1)
            time.sleep(min(2**attempt, 10))
    logger.error("schedule %s: retries exhausted: to the dead-letter queue", name)
    dead_letter(name, event, error)


class ThreadInvoker:
    def __init__(self, invoke: Callable[[dict, Any], Any], workers: int, timeout: float) -> None:
        self.invoke = invoke
        self.timeout = timeout
        self.pool = started_pool(workers)

    def submit(self, jobs: list[Job], done: Done) -> None:
        def run(name: str, event: dict, retries: int) -> None:
            invoke_with_retries(self.invoke, name, event, retries, self.timeout)
            done(name)

        for job in jobs:
            self.pool.submit(run, *job)

    def stop(self) -> None:
        self.pool.shutdown(wait=True)
