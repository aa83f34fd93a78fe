"""Action types: one module per type, looked up by name in a small registry.

An action validates a new task's payload (a pydantic model, which only the
API and the dashboard load) and prepares a Delivery for one attempt, which
the executor connects, sends and receives: a DeliveryResult, or a TransportError;
the executor records either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pydantic import BaseModel


class TransportError(Exception):
    """A failed delivery. permanent=True means retrying cannot help."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        http_status: int | None = None,
        retry_after: float | None = None,
        response_excerpt: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.http_status = http_status
        self.retry_after = retry_after
        self.response_excerpt = response_excerpt


@dataclass(frozen=True)
class DeliveryResult:
    http_status: int | None = None
    response_excerpt: str | None = None


class Delivery(Protocol):
    """One attempt of an action, in steps the executor can spread out:
    connect() ahead of the due time (optional), send() at it, receive()
    after. Each raises TransportError for a failed attempt."""

    def connect(self) -> None: ...

    def send(self) -> None: ...

    def receive(self) -> DeliveryResult: ...

    def close(self) -> None: ...


class Action(Protocol):
    name: str

    @property
    def payload_model(self) -> type[BaseModel]: ...

    def prepare(
        self, *, task_id: str, payload: dict[str, Any], attempt: int, due_at: datetime | None
    ) -> Delivery: ...


def _registry() -> dict[str, Action]:
    from tasks.actions.webhook import WebhookAction

    return {action.name: action for action in (WebhookAction(),)}


ACTIONS: dict[str, Action] = _registry()


def get_action(name: str) -> Action | None:
    return ACTIONS.get(name)
