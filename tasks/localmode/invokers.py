"""How the local stand-in invokes the executor: as Lambda would, each
invocation on its own thread, in worker threads (tests) or in worker
processes (the local mode: like Lambda's separate sandboxes, and using every
core when a crowd of tasks is due at once)."""

from __future__ import annotations

import ctypes
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

logger = logging.getLogger("localmode.invoke")

Done = Callable[[str], None]
Job = tuple[str, dict, int]  # schedule name, event, retries
READY = "\0ready"


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
    for attempt in range(retries + 1):
        try:
            invoke(dict(event), LambdaContext(f"local-executor:{name}", timeout))
            return
        except Exception:
            logger.exception("invocation of schedule %s failed (try %s)", name, attempt + 1)
            time.sleep(min(2**attempt, 10))
    logger.error("schedule %s: retries exhausted (on AWS: to the dead-letter queue)", name)


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


class ProcessInvoker:
    """Worker processes, each running invocations on its own threads."""

    def __init__(self, processes: int, threads: int, timeout: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.inboxes = [context.Queue() for _ in range(processes)]
        self.results = context.Queue()
        self.workers = [
            context.Process(
                target=_worker, args=(inbox, self.results, threads, timeout), daemon=True
            )
            for inbox in self.inboxes
        ]
        for worker in self.workers:
            worker.start()
        # Ready only when every worker has set Django up and can invoke.
        for _ in self.workers:
            if self.results.get(timeout=120) != READY:
                raise RuntimeError("an executor worker process failed to start")
        self.callbacks: dict[str, Done] = {}
        self.turn = 0
        self.listener = threading.Thread(target=self._listen, name="invoke-results", daemon=True)
        self.listener.start()

    def submit(self, jobs: list[Job], done: Done) -> None:
        """Hand out the jobs round-robin, one message per worker."""
        batches: list[list[Job]] = [[] for _ in self.inboxes]
        for job in jobs:
            self.callbacks[job[0]] = done
            batches[self.turn % len(batches)].append(job)
            self.turn += 1
        for inbox, batch in zip(self.inboxes, batches, strict=True):
            if batch:
                inbox.put(batch)

    def _listen(self) -> None:
        while (name := self.results.get()) is not None:
            done = self.callbacks.pop(name, None)
            if done:
                done(name)

    def stop(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for worker in self.workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
        self.results.put(None)
        self.listener.join(timeout=5)


def _initialise() -> None:
    """What a Lambda sandbox does once, before its first invocation: import
    the handler and make the AWS clients. Made lazily instead, a crowd of
    first invocations would each build its own (botocore clients are slow to
    make, and nothing stops two threads making one at once)."""
    import tasks.executor  # noqa: F401
    from tasks import scheduler
    from tasks.models import MODELS

    for model in MODELS:
        _ = model._get_connection().connection.client
    scheduler.client()


def _worker(inbox: Any, results: Any, threads: int, timeout: float) -> None:
    # Die with the parent; leave Ctrl-C to it (it drains us first).
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import sys

    import django

    django.setup()
    # Many invocations share this process (on AWS each has its own): switch
    # threads often, so one recording an outcome does not hold up one that
    # is due to send.
    sys.setswitchinterval(0.0005)
    if os.environ.get("SCHEDULER_LOCAL_CALL_LOG"):
        from tasks.localmode.callcount import install

        install(os.environ["SCHEDULER_LOCAL_CALL_LOG"])
    pool = started_pool(threads)
    _initialise()
    results.put(READY)

    def run(name: str, event: dict, retries: int) -> None:
        invoke_with_retries(invoke_command, name, event, retries, timeout)
        results.put(name)

    while (batch := inbox.get()) is not None:
        for job in batch:
            pool.submit(run, *job)
    pool.shutdown(wait=True)
