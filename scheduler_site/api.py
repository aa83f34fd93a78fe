"""The NinjaAPI: API-key auth on every task route, one place mapping domain
errors to HTTP statuses, and the original system's /schedule-task alias."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from ninja import NinjaAPI
from ninja.security import HttpBearer

from tasks.api import (
    CREATE_RESPONSES,
    IDEMPOTENCY_KEY,
    IdempotencyKey,
    create_task,
    dead_letters_router,
    router,
    schedules_router,
)
from tasks.errors import BadRequest, Conflict, DomainError, Invalid, NotFound, Unavailable
from tasks.schemas import TaskIn
from tasks.services import access

logger = logging.getLogger(__name__)


class ApiKeyAuth(HttpBearer):
    openapi_description = "An API key from `python manage.py createapikey NAME`."

    def authenticate(self, request: HttpRequest, token: str):
        return access.apikey_authenticate(raw_key=token)


api = NinjaAPI(
    title="Task Scheduler API",
    version="1.0.0",
    description="Schedule webhook calls at a time or on a recurring schedule; inspect and cancel them.",
    auth=ApiKeyAuth(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
api.add_router("/tasks", router)
api.add_router("/dead-letters", dead_letters_router)
api.add_router("/schedules", schedules_router)

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    BadRequest: 400,
    Unavailable: 503,
}


def invalid(request: HttpRequest, exc: Invalid):
    detail = [{**e, "loc": _location(e["loc"])} for e in exc.errors]
    return JsonResponse({"detail": detail}, status=422)


def _location(loc: list) -> list:
    return loc if loc[0] in ("header", "query") else ["body", *loc]


def body_too_large(request: HttpRequest, exc: RequestDataTooBig):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return JsonResponse(
        {"detail": f"request body too large; the limit is {limit} bytes"}, status=413
    )


def domain_error(request: HttpRequest, exc: DomainError):
    status = next((s for kind, s in STATUS_BY_ERROR.items() if isinstance(exc, kind)), 400)
    return JsonResponse({"detail": exc.message}, status=status)


# The original system's path, body unchanged. Mounted at the site root (not
# under /api) by scheduler_site/urls.py through its own small NinjaAPI, which
# shares the auth and error handling above.
alias_api = NinjaAPI(
    title="Task Scheduler API (original path)",
    version="1.0.0",
    auth=ApiKeyAuth(),
    urls_namespace="alias",
    docs_url=None,
    openapi_url=None,
)
for ninja_api in (api, alias_api):
    ninja_api.exception_handler(Invalid)(invalid)
    ninja_api.exception_handler(RequestDataTooBig)(body_too_large)
    ninja_api.exception_handler(DomainError)(domain_error)


@alias_api.post("/schedule-task", response=CREATE_RESPONSES, by_alias=True)
def schedule_task(
    request: HttpRequest,
    body: TaskIn,
    idempotency_key: IdempotencyKey = IDEMPOTENCY_KEY,
):
    """Alias of POST /api/tasks, at the original system's path."""
    return create_task(request, body, idempotency_key)
