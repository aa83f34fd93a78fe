"""The tasks router: parse -> service -> schema."""

from __future__ import annotations

from typing import Annotated, Literal

from django.http import HttpRequest
from ninja import Header, Query, Router, Schema, Status
from pydantic import Field, WithJsonSchema

from tasks import selectors
from tasks.models import Status as TaskStatus
from tasks.schemas import (
    DeadLetterPageOut,
    ErrorOut,
    ReplayedOut,
    ReplayedPageOut,
    RescheduleIn,
    ScheduleIn,
    ScheduleOut,
    SchedulePageOut,
    SchedulePatch,
    TaskDetailOut,
    TaskIn,
    TaskOut,
    TaskPageOut,
)
from tasks.services import commands, creation, dead_letters, recurring

router = Router(tags=["tasks"])
dead_letters_router = Router(tags=["dead letters"])
schedules_router = Router(tags=["schedules"])


def errors(*codes: int) -> dict:
    """The error answers a route can give, for its OpenAPI entry: 401 on
    every route, and each of `codes`, all as {"detail": ...}."""
    return {code: ErrorOut for code in (401, *codes)}


# 1 to 255 characters: the service checks it (its message says so); stated
# here for the OpenAPI schema.
IdempotencyKey = Annotated[
    str | None, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255})
]
IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    description="Makes a retried create safe: the same key and body give the same task.",
)

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
    idempotency_key: IdempotencyKey = IDEMPOTENCY_KEY,
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


# Operator commands: the same services, and so the same rules, as the
# dashboard's buttons. 503: the new schedule could not be made (the task is
# unchanged).
COMMAND_RESPONSES = {200: TaskOut, **errors(404, 409, 503)}


@router.post(
    "/{task_id}/retry",
    response=COMMAND_RESPONSES,
    by_alias=True,
    summary="Retry a failed (or stuck) task with a fresh round of attempts",
)
def retry_task(request: HttpRequest, task_id: str):
    return commands.task_retry(task_id=task_id)


@router.post(
    "/{task_id}/run-now",
    response=COMMAND_RESPONSES,
    by_alias=True,
    summary="Run a scheduled task now",
)
def run_task_now(request: HttpRequest, task_id: str):
    return commands.task_run_now(task_id=task_id)


@router.post(
    "/{task_id}/reschedule",
    response={**COMMAND_RESPONSES, 422: dict},
    by_alias=True,
    summary="Move a scheduled task to a new runAt",
)
def reschedule_task(request: HttpRequest, task_id: str, body: RescheduleIn):
    return commands.task_reschedule(task_id=task_id, run_at=body.run_at)


# --- dead letters -------------------------------------------------------------------------


@dead_letters_router.get(
    "",
    response={200: DeadLetterPageOut, **errors(503)},
    by_alias=True,
    summary="List the dead-letter queue (up to 100 messages, oldest first)",
)
def list_dead_letters(request: HttpRequest):
    return dead_letters.deadletter_list()


@dead_letters_router.post(
    "/replay-all",
    response={200: ReplayedPageOut, **errors(503)},
    by_alias=True,
    summary="Replay every dead letter (those of running tasks stay)",
)
def replay_all_dead_letters(request: HttpRequest):
    return {"items": dead_letters.deadletter_replay_all()}


@dead_letters_router.post(
    "/{message_id}/replay",
    response={200: ReplayedOut, **errors(404, 409, 503)},
    by_alias=True,
    summary="Replay a dead letter: its task runs again under the usual claim",
)
def replay_dead_letter(request: HttpRequest, message_id: str):
    return dead_letters.deadletter_replay(message_id=message_id)


@dead_letters_router.delete(
    "/{message_id}",
    response={204: None, **errors(404, 503)},
    summary="Discard a dead letter",
)
def discard_dead_letter(request: HttpRequest, message_id: str):
    dead_letters.deadletter_discard(message_id=message_id)
    return Status(204, None)


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
