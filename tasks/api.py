"""The tasks router: parse -> service -> schema."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Header, Query, Router, Schema, Status
from pydantic import Field

from tasks import selectors
from tasks.models import Status as TaskStatus
from tasks.schemas import ErrorOut, TaskDetailOut, TaskIn, TaskOut, TaskPageOut
from tasks.services import commands, creation

router = Router(tags=["tasks"])


def errors(*codes: int) -> dict:
    """The error answers a route can give, for its OpenAPI entry: 401 on
    every route, and each of `codes`, all as {"detail": ...}."""
    return {code: ErrorOut for code in (401, *codes)}


# 422 is ninja's shape, {"detail": [...]}; 400 is a body that is not JSON.
CREATE_RESPONSES = {201: TaskOut, 422: dict, **errors(400, 409, 413, 503)}


class ListFilters(Schema):
    status: TaskStatus | None = None
    order: Literal["newest", "due"] = "newest"
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=2048)


@router.post(
    "",
    response=CREATE_RESPONSES,
    by_alias=True,
    summary="Schedule a task",
)
def create_task(
    request: HttpRequest,
    body: TaskIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    task, _created = creation.task_create(
        action=body.action,
        payload=body.payload,
        run_at=body.run_at,
        max_attempts=body.max_attempts,
        idempotency_key=idempotency_key,
        created_by=request.auth.key_id,
    )
    return Status(201, task)


@router.get(
    "",
    response={200: TaskPageOut, 422: dict, **errors(400)},
    by_alias=True,
    summary="List tasks",
)
def list_tasks(request: HttpRequest, filters: Query[ListFilters]):
    page = selectors.task_list(
        status=filters.status, order=filters.order, limit=filters.limit, cursor=filters.cursor
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get(
    "/{task_id}", response={200: TaskDetailOut, **errors(404)}, by_alias=True, summary="Get a task"
)
def get_task(request: HttpRequest, task_id: str):
    return selectors.task_get(task_id=task_id)


@router.post(
    "/{task_id}/cancel",
    response={200: TaskOut, **errors(404, 409)},
    by_alias=True,
    summary="Cancel a scheduled task",
)
def cancel_task(request: HttpRequest, task_id: str):
    return commands.task_cancel(task_id=task_id)
