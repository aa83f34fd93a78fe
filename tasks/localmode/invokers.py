"""How the local stand-in invokes the executor: as Lambda would invoke the
function (the event and a context), each invocation on its own thread from a
bounded pool."""

from __future__ import annotations

import contextlib
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

Done = Callable[[str, bool], None]
Job = tuple[str, dict, int, bool, float]  # schedule name, event, retries, delete after, due


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
    invoke: Callable[[dict, Any], Any],
    name: str,
    event: dict,
    retries: int,
    timeout: float,
    stopping: threading.Event | None = None,
) -> bool:
    """One invocation, retried like the schedule's RetryPolicy says. A
    refused connection to the local endpoint (restarting) is the stand-in's
    own failure, not the task's: retried until it answers, not counted. False
    if given up at stop: the schedule stays, and fires again at the next start."""
    from tasks.aws import storage_refused, storage_unreachable
    from tasks.executor import ExecutorError

    stopping = stopping or threading.Event()
    logger.debug("invoking %s at %.3f", name, time.time())
    attempt = 0
    error: Exception | None = None
    while True:
        try:
            invoke(dict(event), LambdaContext(f"local-executor:{name}", timeout))
            return True
        except ExecutorError as exc:  # the executor's own, expected refusal
            error = exc
            logger.warning("invocation of schedule %s failed (try %s): %s", name, attempt + 1, exc)
        except Exception as exc:
            error = exc
            if storage_refused(exc) and not stopping.wait(0.5):
                logger.info("schedule %s: the local endpoint is not answering; retrying", name)
                continue
            if storage_unreachable(exc):  # e.g. a timeout: no traceback needed
                logger.warning(
                    "invocation of schedule %s failed (try %s): %s", name, attempt + 1, exc
                )
            else:
                logger.exception("invocation of schedule %s failed (try %s)", name, attempt + 1)
        if stopping.wait(min(2**attempt, 10)):
            return False
        attempt += 1
        if attempt > retries:
            logger.error("schedule %s: retries exhausted: to the dead-letter queue", name)
            dead_letter(name, event, error)
            return True


class NoPacing:
    """Invocations that need no ordering against each other (see SendFirst)."""

    def expect(self, dues: list[float]) -> None:
        return None

    def invocation(self, due: float) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


class ThreadInvoker:
    def __init__(
        self,
        invoke: Callable[[dict, Any], Any],
        workers: int,
        timeout: float,
        pacer: Any = None,
    ) -> None:
        self.invoke = invoke
        self.timeout = timeout
        self.pacer = pacer or NoPacing()
        self.pool = started_pool(workers)
        self.stopping = threading.Event()
        self.running = 0
        self.idle = threading.Condition()

    def submit(self, jobs: list[Job], done: Done) -> None:
        def run(name: str, event: dict, retries: int, delete_after: bool, due: float) -> None:
            with self.pacer.invocation(due):
                attempt(name, event, retries, delete_after)

        def attempt(name: str, event: dict, retries: int, delete_after: bool) -> None:
            with self.idle:
                if self.stopping.is_set():
                    return  # not started: its schedule fires at the next start
                self.running += 1
            try:
                if invoke_with_retries(
                    self.invoke, name, event, retries, self.timeout, self.stopping
                ):
                    done(name, delete_after)
            finally:
                with self.idle:
                    self.running -= 1
                    self.idle.notify_all()

        self.pacer.expect([job[4] for job in jobs])
        for job in jobs:
            self.pool.submit(run, *job)

    def stop(self, timeout: float) -> bool:
        """Start nothing more; wait up to `timeout` for the running
        invocations to record their outcome. False if some did not."""
        self.stopping.set()
        # Queued invocations still run, to return at once (and tell the pacer).
        self.pool.shutdown(wait=False)
        with self.idle:
            finished = self.idle.wait_for(lambda: self.running == 0, timeout)
        if not finished:
            logger.warning("%s invocations still running at stop", self.running)
        return finished
