"""`make webhook`: schedule a demo webhook a few seconds ahead to a small
receiver on 127.0.0.1, show the signed request it gets, and the task's end."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory

import urllib3
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from standardwebhooks import Webhook, WebhookVerificationError

from tasks.localmode.process import start_local
from tasks.models import Status


class Command(BaseCommand):
    help = "Schedule a demo webhook to a local receiver and watch it arrive."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="a running `make run`")
        parser.add_argument("--data-dir", type=Path, default=Path(".local"))
        parser.add_argument("--delay", type=int, default=3, help="seconds ahead")

    def handle(self, *args, port: int, data_dir: Path, delay: int, **options) -> None:
        received: list[tuple[dict, bytes]] = []
        receiver = _receiver(received)
        url = f"http://127.0.0.1:{receiver.server_port}/demo-hook"
        base, api_key, stack, tmp = self._scheduler(port, data_dir)
        try:
            self._demo(base, api_key, url, received, delay)
        finally:
            receiver.shutdown()
            if stack:
                stack.stop()
                tmp.cleanup()

    def _scheduler(self, port: int, data_dir: Path):
        creds_file = data_dir / "credentials.json"
        base = f"http://127.0.0.1:{port}"
        try:
            urllib3.request("GET", base + "/api/openapi.json", timeout=1, retries=False)
            if creds_file.exists():
                self.stdout.write(f"Using the scheduler running at {base}")
                return base, json.loads(creds_file.read_text())["api_key"], None, None
        except urllib3.exceptions.HTTPError:
            pass
        self.stdout.write("No scheduler running (make run): starting a temporary one...")
        tmp = TemporaryDirectory()
        stack = start_local(Path(tmp.name))
        return stack.url.rstrip("/"), stack.api_key, stack, tmp

    def _demo(self, base: str, api_key: str, url: str, received: list, delay: int) -> None:
        http = urllib3.PoolManager(headers={"Authorization": f"Bearer {api_key}"})
        run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=delay)
        body = {
            "action": "webhook",
            "payload": {"url": url, "data": {"message": "Hello World"}},
            "runAt": run_at.isoformat().replace("+00:00", "Z"),
        }
        self.stdout.write(f"\nPOST {base}/schedule-task\n{json.dumps(body, indent=2)}")
        response = http.request("POST", base + "/schedule-task", json=body)
        task = response.json()
        if response.status != 201:
            raise CommandError(f"scheduling failed: {response.status} {task}")
        self.stdout.write(f"-> {response.status}, task {task['id']} {task['status']}\n")
        deadline = time.time() + delay + 30
        while not received and time.time() < deadline:
            time.sleep(0.05)
        if not received:
            raise CommandError("the webhook did not arrive")
        headers, payload = received[0]
        late = time.time() - run_at.timestamp()
        self.stdout.write(f"Webhook received ({late:.2f} s after runAt):")
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "user-agent"):
            self.stdout.write(f"  {name}: {headers.get(name)}")
        self.stdout.write(f"  body: {payload.decode()}")
        try:
            Webhook(settings.WEBHOOK_SIGNING_SECRET).verify(payload, headers)
            self.stdout.write("  signature: valid (WEBHOOK_SIGNING_SECRET)")
        except WebhookVerificationError as exc:
            self.stdout.write(f"  signature: NOT valid with this WEBHOOK_SIGNING_SECRET ({exc})")
        while time.time() < deadline:
            detail = http.request("GET", f"{base}/api/tasks/{task['id']}").json()
            if detail["status"] not in (Status.SCHEDULED, Status.RUNNING):
                break
            time.sleep(0.1)
        attempt = (detail.get("attemptHistory") or [{}])[-1]
        self.stdout.write(
            f"\nTask {task['id']}: {detail['status']} after {detail['attempts']} attempt(s), "
            f"HTTP {attempt.get('httpStatus')} in {attempt.get('durationMs')} ms"
        )


def _receiver(received: list) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"thanks")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
