"""`make run`: the whole scheduler on one machine."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tasks.localmode import lifeline
from tasks.localmode.endpoint import EndpointError, SupervisedEndpoint

logger = logging.getLogger("localmode")

# How long a stop waits for running invocations to record their outcome.
STOP_TASKS_SECONDS = 3.0
LOCAL_READ_TIMEOUT_SECONDS = 60


def _child_setup() -> None:
    # Die with the parent (at once on Linux; elsewhere the child notices, as
    # it is started with --parent), and leave Ctrl-C to it: the parent drains
    # the running tasks before it stops the AWS endpoint they write to.
    lifeline.die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Command(BaseCommand):
    help = "Run the scheduler locally: AWS endpoint, schedule firing, API and dashboard."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--data-dir", type=Path, default=Path(".local"))
        parser.add_argument(
            "--threads", type=int, default=1024, help="executor invocations at once (a pool)"
        )
        parser.add_argument(
            "--stop-with-parent",
            action="store_true",
            help="stop when the parent goes, or gets a signal it does not pass on (make run)",
        )

    def handle(
        self,
        *args,
        host: str,
        port: int,
        data_dir: Path,
        threads: int,
        stop_with_parent: bool,
        **options,
    ) -> None:
        if not settings.LOCAL_MODE:
            raise CommandError("runlocal needs SCHEDULER_LOCAL_MODE=true (make run sets it)")
        # First, so that a Ctrl-C while starting also stops in order.
        stopping = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        data_dir.mkdir(parents=True, exist_ok=True)
        # whitenoise warns about a missing STATIC_ROOT; the local mode serves
        # static files from the apps (WHITENOISE_USE_FINDERS).
        Path(settings.STATIC_ROOT).mkdir(exist_ok=True)
        aws = self._start_aws(data_dir)
        if stop_with_parent:
            lifeline.watch_parent(os.getppid(), stopping.set, signals=True)
        firer = server = source = None
        try:
            from tasks.localmode import precision
            from tasks.localmode.bootstrap import bootstrap

            banner = precision.banner()  # fails loudly on a bad value, before anything
            creds = bootstrap(data_dir)
            started = datetime.now(UTC)  # what came before is settled: reconcile
            self._count_calls()
            pacer = self._pacer()
            source = self._queue_source(threads, pacer)  # before any firing
            firer = self._start_firer(aws.url, threads, pacer)
            source.start()
            self._reconcile(started)
            server = self._start_web(host, port)
            if banner:
                self.stdout.write(banner)
            # Everything made so far lives as long as the process: keep the
            # garbage collector from walking it again and again (its pauses
            # would land on deliveries).
            gc.freeze()
            if not stopping.is_set():
                self.stdout.write(f"Dashboard: http://{host}:{server.server_port}/")
                self.stdout.write(f"Login: {creds['username']} {creds['password']}")
                self.stdout.write(f"API key: {creds['api_key']}")
                self.stdout.flush()
            stopping.wait()
        finally:
            self._stop(server, firer, source, aws)

    def _stop(self, server, firer, source, aws) -> None:
        """In order: no new web requests, no new firing, running tasks record
        their outcome, then the endpoint they write to saves and stops."""
        started = time.monotonic()
        self.stderr.write("stopping...")
        if server:
            server.shutdown()
            server.server_close()
        if firer:
            firer.stop(timeout=STOP_TASKS_SECONDS)
        if source:
            source.stop()
        aws.stop()
        self.stderr.write(f"stopped ({time.monotonic() - started:.1f} s)")

    def _reconcile(self, started: datetime) -> None:
        from tasks.localmode.recovery import reconcile_in_background

        reconcile_in_background(settled_before=started, say=self.stderr.write)

    def _start_aws(self, data_dir: Path) -> SupervisedEndpoint:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "local")
        os.environ.pop("AWS_PROFILE", None)
        aws = SupervisedEndpoint(
            data_dir / "aws.pickle",
            say=lambda line: (self.stderr.write(line), self.stderr.flush()),
            child_setup=_child_setup,
        )
        try:
            url = aws.start()
        except EndpointError as exc:
            raise CommandError(str(exc)) from None
        # Every boto3/PynamoDB client in this process is created after this.
        os.environ["AWS_ENDPOINT_URL"] = url
        return aws

    def _pacer(self):
        from tasks.localmode.sendfirst import SendFirst
        from tasks.services import running

        # Many invocations share this process (on Lambda, one each).
        pacer = SendFirst()
        running.set_pacer(pacer)
        return pacer

    def _start_firer(self, endpoint: str, threads: int, pacer):
        from tasks.localmode.firer import Firer
        from tasks.localmode.invokers import invoke_command
        from tasks.localmode.sources import FeedSource

        _make_clients()
        # The timeout is the executor Lambda's (zappa_settings.json).
        # Its own client, apart from the call counter: its calls (deleting
        # fired schedules) are ones EventBridge makes itself on AWS. It learns
        # the schedules from the endpoint's change feed.
        firer = Firer(
            client=_uncounted_scheduler_client(),
            group=settings.SCHEDULE_GROUP,
            source=FeedSource(endpoint, settings.SCHEDULE_GROUP),
            workers=threads,
            timeout=120.0,
            pacer=pacer,
            invoke=_metered(invoke_command, "executor", via="scheduler"),
        )
        firer.start()
        return firer

    def _queue_source(self, threads: int, pacer):
        """The hop queue and the stand-in for its Lambda event source; the
        app sends to it (TASK_QUEUE_URL), as on AWS, its messages visible a
        little earlier than on AWS (the stand-in times them: sqsource.py)."""
        from tasks import taskqueue
        from tasks.localmode import callcount, crowd
        from tasks.localmode.sqsource import QueueSource, ensure_queue

        # Its own client, apart from the call counter: its requests are the
        # event source's (metered below as such).
        with callcount.uncounted():
            client = boto3.client("sqs", region_name=settings.AWS_REGION)
        # The executor Lambda's timeout (zappa_settings.json) is 120 s.
        url, arn = ensure_queue(client, f"{settings.TABLE_PREFIX}-hop", visibility_timeout=120)
        settings.TASK_QUEUE_URL = url
        taskqueue.set_lookahead(crowd.hop_lookahead())
        source = QueueSource(
            client=client,
            url=url,
            arn=arn,
            region=settings.AWS_REGION,
            workers=threads,
            on_request=lambda operation: callcount.record("call", f"sqs.{operation}"),
            pacer=pacer,
        )
        source.invoke = _metered(source.invoke, "executor")
        return source

    def _count_calls(self) -> None:
        from tasks import scheduler, taskqueue
        from tasks.localmode import callcount
        from tasks.models import MODELS

        call_log = os.environ.get("SCHEDULER_LOCAL_CALL_LOG")
        meter_log = os.environ.get("SCHEDULER_LOCAL_METER_LOG")
        if call_log:
            callcount.install(call_log)
        if meter_log:
            callcount.install_meter(meter_log)
        if not (call_log or meter_log):
            return
        # The app's clients are made again, now with the counter attached.
        for model in MODELS:
            model._connection = None
        scheduler.client.cache_clear()
        taskqueue.client.cache_clear()

    def _start_web(self, host: str, port: int):
        from werkzeug.serving import WSGIRequestHandler, make_server

        from scheduler_site.wsgi import application

        class Handler(WSGIRequestHandler):
            def log_request(self, code="-", size="-") -> None:
                logger.info('%s "%s" %s', self.address_string(), self.requestline, code)

        if os.environ.get("SCHEDULER_LOCAL_METER_LOG"):
            from tasks.localmode.callcount import timed_wsgi

            application = timed_wsgi(application)
        server = make_server(host, port, application, threaded=True, request_handler=Handler)
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="web", daemon=True
        ).start()
        return server


def _uncounted_scheduler_client():
    from tasks.localmode.callcount import uncounted

    with uncounted():
        return boto3.client("scheduler", region_name=settings.AWS_REGION)


def _make_clients() -> None:
    """Make the AWS clients before the first invocation, as a Lambda's init
    would: made lazily, a crowd of first invocations would each build one
    (botocore clients are slow to make, and nothing stops two threads making
    one at once)."""
    from tasks import scheduler, taskqueue
    from tasks.models import MODELS

    for model in MODELS:
        # The local endpoint serves one request at a time: a crowd of claims
        # queues there longer than DynamoDB's 10 s read timeout allows for,
        # and a claim that timed out may still have been made.
        model.Meta.read_timeout_seconds = LOCAL_READ_TIMEOUT_SECONDS
        model._connection = None
        _ = model._get_connection().connection.client
    scheduler.client()
    taskqueue.client()


def _metered(invoke, name: str, via: str | None = None):
    """With SCHEDULER_LOCAL_METER_LOG, each invocation (and, via the
    scheduler, each Scheduler invocation) is metered for the cost bench."""
    if not os.environ.get("SCHEDULER_LOCAL_METER_LOG"):
        return invoke
    from tasks.localmode.callcount import record, timed

    timed_invoke = timed(invoke, name)
    if via is None:
        return timed_invoke

    def invoke_via(event, context):
        record(via, "invocation")
        return timed_invoke(event, context)

    return invoke_via
