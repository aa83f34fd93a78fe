"""The webhook action: a signed JSON request to a URL the task names."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

from django.conf import settings

from tasks.actions import DeliveryResult, TransportError
from tasks.actions.limits import json_problem
from tasks.actions.netguard import BlockedAddressError, ConnectError, connection_class
from tasks.actions.webhook_rules import MAX_URL_CHARS, headers_problem, normalise_url

if TYPE_CHECKING:
    from pydantic import BaseModel

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 500

Method = Literal["POST", "PUT", "PATCH", "DELETE"]
METHODS: tuple[str, ...] = get_args(Method)


@dataclass(frozen=True)
class WebhookSpec:
    """A stored webhook payload, as the executor delivers it."""

    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    data: Any = None

    @classmethod
    def from_stored(cls, payload: Any) -> WebhookSpec:
        """Check a stored payload against today's rules (the same checks as
        WebhookPayload's and the service's, without pydantic); ValueError
        lists what fails. The URL comes back normalised, as the API stores
        it (a no-op for a URL the API stored)."""
        if not isinstance(payload, dict):
            raise ValueError("payload must be an object")
        problems = []
        unknown = sorted(set(payload) - {"url", "method", "headers", "data"})
        if unknown:
            problems.append(f"unexpected fields {', '.join(map(ascii, unknown))}")
        url = payload.get("url")
        if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
            problems.append(f"url must be a string of at most {MAX_URL_CHARS} characters")
        else:
            try:
                url = normalise_url(url)
            except ValueError as exc:
                problems.append(str(exc))
        method = payload.get("method", "POST")
        method = method.upper() if isinstance(method, str) else method
        if method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}")
        headers = payload.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            problems.append("headers must map names to strings")
        elif problem := headers_problem(headers):
            problems.append(problem)
        data = payload.get("data")
        if problem := json_problem(data, allow_nan=False):
            problems.append(problem)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(url=url, method=method, headers=headers, data=data)


@cache
def signer(secret: str):
    from standardwebhooks import Webhook

    return Webhook(secret)


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _excerpt(response: Any, deadline: float) -> str | None:
    """The start of the response body, read until `deadline` at the latest:
    a receiver that sends its body a byte at a time cannot hold the executor
    (each read waits at most the socket timeout; read(n) would loop until n)."""
    wanted = EXCERPT_CHARS * 4
    body = b""
    try:
        while len(body) < wanted and time.monotonic() < deadline:
            chunk = response.read1(wanted - len(body))
            if not chunk:
                break
            body += chunk
    except Exception:  # a broken or stalled body must not hide the status we have
        pass
    finally:
        response.close()
    text = body.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    return text or None


class WebhookDelivery:
    """One delivery on its own connection, in three steps, so the executor
    can open the connection and write the request ahead of the due time, send
    it at that time in one write, and read the answer after: connect()
    (optional; send() does it if needed), send(), receive(). Each raises
    TransportError for a failed delivery."""

    def __init__(self, task_id: str, spec: WebhookSpec, due_at: datetime | None = None) -> None:
        parts = urlsplit(spec.url)
        self.task_id = task_id
        self.spec = spec
        self.body = json.dumps(spec.data, separators=(",", ":")).encode()
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = settings.WEBHOOK_TIMEOUT_SECONDS
        cls = connection_class(parts.scheme, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
        self.conn = cls(parts.hostname, parts.port, timeout=self.timeout)
        self.due = due_at.timestamp() if due_at else 0.0
        self.staged = False
        self.deadline: float | None = None

    def connect(self) -> None:
        """Connect, and write the request line and headers into the
        connection's buffer (nothing is sent yet)."""
        if self.staged:
            return
        try:
            self.conn.connect()  # through the SSRF guard
            self._stage()
        except Exception as exc:
            self.close()
            raise _transport_error(exc, self.timeout) from None
        self.staged = True

    def _stage(self) -> None:
        # Signed as of when it will be sent: now, or the due time it waits for.
        timestamp = int(max(time.time(), self.due))
        # webhook-id is the task id on every attempt, so receivers can dedupe.
        signature = signer(settings.WEBHOOK_SIGNING_SECRET).sign(
            self.task_id, datetime.fromtimestamp(timestamp, tz=UTC), self.body.decode()
        )
        headers = {
            **self.spec.headers,
            "Content-Type": "application/json",
            "Content-Length": str(len(self.body)),
            "User-Agent": settings.WEBHOOK_USER_AGENT,
            "webhook-id": self.task_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        self.conn.putrequest(self.spec.method, self.target)
        for name, value in headers.items():
            self.conn.putheader(name, value)

    def send(self) -> None:
        """Send the request: headers and body in one write."""
        self.connect()
        self.deadline = time.monotonic() + self.timeout
        try:
            self.conn.endheaders(message_body=self.body)
        except Exception as exc:
            self.close()
            raise _transport_error(exc, self.timeout) from None

    def receive(self) -> DeliveryResult:
        deadline = self.deadline or time.monotonic() + self.timeout
        # The response must arrive within what is left of the timeout.
        remaining = max(0.001, deadline - time.monotonic())
        self.conn.timeout = remaining
        try:
            if self.conn.sock is not None:
                self.conn.sock.settimeout(remaining)
            response = self.conn.getresponse()
        except Exception as exc:
            self.close()
            raise _transport_error(exc, self.timeout) from None
        try:
            return _judge(response, deadline)
        finally:
            self.close()

    def close(self) -> None:
        self.conn.close()


def _transport_error(exc: Exception, timeout: float) -> TransportError:
    if isinstance(exc, BlockedAddressError):
        return TransportError(str(exc), permanent=True)
    if isinstance(exc, ConnectError):
        return TransportError(f"connection failed: {exc}")
    if isinstance(exc, TimeoutError):
        return TransportError(f"timed out after {timeout:g} s")
    return TransportError(f"connection failed: {exc or type(exc).__name__}")


class WebhookAction:
    name = "webhook"

    @property
    def payload_model(self) -> type[BaseModel]:
        # Imported on first use: the executor only delivers, and pydantic is
        # a sixth of its cold start.
        from tasks.actions.webhook_payload import WebhookPayload

        return WebhookPayload

    def prepare(
        self,
        *,
        task_id: str,
        payload: dict[str, Any],
        attempt: int,
        due_at: datetime | None = None,
    ) -> WebhookDelivery:
        try:
            spec = WebhookSpec.from_stored(payload)
        except ValueError as exc:
            # A stored payload that today's rules refuse (e.g. made while
            # private networks were allowed): retrying cannot help.
            raise TransportError(f"invalid payload: {exc}", permanent=True) from None
        return WebhookDelivery(task_id, spec, due_at)

    def run(self, *, task_id: str, payload: dict[str, Any], attempt: int) -> DeliveryResult:
        """Deliver now: prepare, send and receive in one go."""
        delivery = self.prepare(task_id=task_id, payload=payload, attempt=attempt)
        try:
            delivery.send()
            return delivery.receive()
        finally:
            delivery.close()


def _judge(response: Any, deadline: float) -> DeliveryResult:
    status = response.status
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    location = response.headers.get("Location")
    excerpt = _excerpt(response, deadline)
    if 200 <= status < 300:
        return DeliveryResult(http_status=status, response_excerpt=excerpt)
    if 300 <= status < 400:
        raise TransportError(
            f"HTTP {status}: redirect to {location or '?'} not followed",
            permanent=True,
            http_status=status,
            response_excerpt=excerpt,
        )
    retryable = status == 429 or status >= 500
    raise TransportError(
        f"HTTP {status}",
        permanent=not retryable,
        http_status=status,
        retry_after=retry_after,
        response_excerpt=excerpt,
    )
