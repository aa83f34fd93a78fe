"""`make run`: the whole scheduler on one machine."""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import boto3
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tasks.localmode import lifeline

logger = logging.getLogger("localmode")


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
            "--threads", type=int, default=256, help="executor invocations at once (a pool)"
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
        data_dir.mkdir(parents=True, exist_ok=True)
        # whitenoise warns about a missing STATIC_ROOT; the local mode serves
        # static files from the apps (WHITENOISE_USE_FINDERS).
        Path(settings.STATIC_ROOT).mkdir(exist_ok=True)
        aws = self._start_aws(data_dir)
        stopping = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        if stop_with_parent:
            lifeline.watch_parent(os.getppid(), stopping.set, signals=True)
        firer = server = source = None
        try:
            from tasks.localmode import precision
            from tasks.localmode.bootstrap import bootstrap

            banner = precision.banner()  # fails loudly on a bad value, before anything
            creds = bootstrap(data_dir)
            started = datetime.now(UTC)  # what came before is settled: reconcile
            # Its own client, made before the call counter is attached: its
            # calls (reading and deleting fired schedules) are ones EventBridge
            # makes itself on AWS.
            firer_client = boto3.client("scheduler", region_name=settings.AWS_REGION)
            sqs_client = boto3.client("sqs", region_name=settings.AWS_REGION)
            self._count_calls()
            source = self._queue_source(sqs_client, threads)  # before any firing
            firer = self._start_firer(firer_client, threads)
            source.start()
            self._reconcile(started)
            server = self._start_web(host, port)
            if banner:
                self.stdout.write(banner)
            # Everything made so far lives as long as the process: keep the
            # garbage collector from walking it again and again (its pauses
            # would land on deliveries).
            gc.freeze()
            self.stdout.write(f"Dashboard: http://{host}:{server.server_port}/")
            self.stdout.write(f"Login: {creds['username']} {creds['password']}")
            self.stdout.write(f"API key: {creds['api_key']}")
            self.stdout.flush()
            stopping.wait()
        finally:
            self.stderr.write("stopping...")
            if server:
                server.shutdown()
            if firer:
                firer.stop()  # lets running tasks record their outcome
            if source:
                source.stop()
            aws.terminate()
            try:
                aws.wait(timeout=10)
            except subprocess.TimeoutExpired:
                aws.kill()
            self.stderr.write("stopped")

    def _reconcile(self, started: datetime) -> None:
        from tasks.localmode.recovery import reconcile_in_background

        reconcile_in_background(settled_before=started, say=self.stderr.write)

    def _start_aws(self, data_dir: Path) -> subprocess.Popen:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "local")
        os.environ.pop("AWS_PROFILE", None)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tasks.localmode.awsserver",
                "--port",
                "0",
                "--state",
                str(data_dir / "aws.pickle"),
                "--parent",
                str(os.getpid()),
            ],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_child_setup,
        )
        line = process.stdout.readline()
        if not line.startswith("local AWS on "):
            process.kill()
            raise CommandError(f"the local AWS endpoint did not start: {line!r}")
        endpoint = line.split()[3]
        # Every boto3/PynamoDB client in this process is created after this.
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        self.stderr.write(line.strip())
        return process

    def _start_firer(self, client, threads: int):
        from tasks.localmode.firer import Firer
        from tasks.localmode.invokers import invoke_command
        from tasks.localmode.sendfirst import SendFirst
        from tasks.services import running

        # Many invocations share this process (on Lambda, one each).
        running.set_pacer(SendFirst())
        _make_clients()
        # The timeout is the executor Lambda's (zappa_settings.json).
        firer = Firer(
            client=client,
            group=settings.SCHEDULE_GROUP,
            workers=threads,
            timeout=120.0,
            invoke=_metered(invoke_command, "executor", via="scheduler"),
        )
        firer.start()
        return firer

    def _queue_source(self, client, threads: int):
        """The hop queue and the stand-in for its Lambda event source; the
        app sends to it (TASK_QUEUE_URL), as on AWS."""
        from tasks.localmode import callcount
        from tasks.localmode.sqsource import QueueSource, ensure_queue

        # The executor Lambda's timeout (zappa_settings.json) is 120 s.
        url, arn = ensure_queue(client, f"{settings.TABLE_PREFIX}-hop", visibility_timeout=120)
        settings.TASK_QUEUE_URL = url
        source = QueueSource(
            client=client,
            url=url,
            arn=arn,
            region=settings.AWS_REGION,
            workers=threads,
            on_request=lambda operation: callcount.record("call", f"sqs.{operation}"),
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
        threading.Thread(target=server.serve_forever, name="web", daemon=True).start()
        return server


def _make_clients() -> None:
    """Make the AWS clients before the first invocation, as a Lambda's init
    would: made lazily, a crowd of first invocations would each build one
    (botocore clients are slow to make, and nothing stops two threads making
    one at once)."""
    from tasks import scheduler, taskqueue
    from tasks.models import MODELS

    for model in MODELS:
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
