"""The tasks router: parse -> service -> schema."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Header, Query, Router, Schema, Status
from pydantic import Field

from tasks import selectors
from tasks.models import Status as TaskStatus
from tasks.schemas import (
    ErrorOut,
    ScheduleIn,
    ScheduleOut,
    SchedulePageOut,
    SchedulePatch,
    TaskDetailOut,
    TaskIn,
    TaskOut,
    TaskPageOut,
)
from tasks.services import commands, creation, recurring

router = Router(tags=["tasks"])
schedules_router = Router(tags=["schedules"])


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
    schedule_id: str | None = Field(None, alias="scheduleId", max_length=64)


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
        status=filters.status,
        order=filters.order,
        limit=filters.limit,
        cursor=filters.cursor,
        schedule_id=filters.schedule_id,
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


# --- recurring schedules -------------------------------------------------------------


class PageFilters(Schema):
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=2048)


@schedules_router.post(
    "",
    response={201: ScheduleOut, 422: dict, **errors(400, 413, 503)},
    by_alias=True,
    summary="Create a recurring schedule",
)
def create_schedule(request: HttpRequest, body: ScheduleIn):
    schedule = recurring.schedule_create(
        action=body.action,
        payload=body.payload,
        cron=body.cron,
        rate=body.rate,
        timezone=body.timezone,
        max_attempts=body.max_attempts,
        start_at=body.start_at,
        end_at=body.end_at,
        description=body.description,
        created_by=request.auth.key_id,
    )
    return Status(201, schedule)


@schedules_router.get(
    "",
    response={200: SchedulePageOut, 422: dict, **errors(400)},
    by_alias=True,
    summary="List recurring schedules",
)
def list_schedules(request: HttpRequest, filters: Query[PageFilters]):
    page = selectors.schedule_list(limit=filters.limit, cursor=filters.cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}


@schedules_router.get(
    "/{schedule_id}",
    response={200: ScheduleOut, **errors(404)},
    by_alias=True,
    summary="Get a recurring schedule",
)
def get_schedule(request: HttpRequest, schedule_id: str):
    return selectors.schedule_get(schedule_id=schedule_id)


@schedules_router.patch(
    "/{schedule_id}",
    response={200: ScheduleOut, 422: dict, **errors(400, 404, 409, 413, 503)},
    by_alias=True,
    summary="Change a recurring schedule",
)
def update_schedule(request: HttpRequest, schedule_id: str, body: SchedulePatch):
    return recurring.schedule_update(schedule_id=schedule_id, changes=body.changes())


@schedules_router.post(
    "/{schedule_id}/pause",
    response={200: ScheduleOut, **errors(404, 409, 503)},
    by_alias=True,
    summary="Pause a recurring schedule",
)
def pause_schedule(request: HttpRequest, schedule_id: str):
    return recurring.schedule_pause(schedule_id=schedule_id)


@schedules_router.post(
    "/{schedule_id}/resume",
    response={200: ScheduleOut, **errors(404, 409, 503)},
    by_alias=True,
    summary="Resume a paused recurring schedule",
)
def resume_schedule(request: HttpRequest, schedule_id: str):
    return recurring.schedule_resume(schedule_id=schedule_id)


@schedules_router.delete(
    "/{schedule_id}",
    response={204: None, **errors(404, 503)},
    summary="Delete a recurring schedule (its occurrences stay)",
)
def delete_schedule(request: HttpRequest, schedule_id: str):
    recurring.schedule_delete(schedule_id=schedule_id)
    return Status(204, None)
