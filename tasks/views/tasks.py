"""Dashboard pages about tasks: list, detail, create and the actions. Thin:
every decision is made by the services and selectors."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tasks import selectors
from tasks.errors import Conflict, Invalid, InvalidCursor, NotFound, Unavailable
from tasks.forms import RescheduleForm, TaskForm
from tasks.models import STATUSES, Status, Task
from tasks.schemas import REDACTED, public_payload
from tasks.services import commands, creation
from tasks.services.store import now
from tasks.views.auth import (
    as_sentence,
    get_or_404,
    login_required,
    operator_timezone,
    render_page,
)

PAGE_SIZE = 25
ORDER_LABELS = {"newest": "Newest first", "due": "Next due first"}
# How often an open page asks for fresh statuses (seconds).
LIST_POLL_SECONDS = 5
DETAIL_POLL_SECONDS = 2
DETAIL_IDLE_POLL_SECONDS = 30


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- list ---------------------------------------------------------------------------


@require_GET
@login_required
def task_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    order = request.GET.get("order") or "newest"
    cursor = request.GET.get("cursor") or None
    if status not in (None, *STATUSES) or order not in ORDER_LABELS:
        return redirect("dashboard:task_list")
    try:
        page = selectors.task_list(status=status, order=order, limit=PAGE_SIZE, cursor=cursor)
    except InvalidCursor:
        # A cursor from another filter or a mangled link: start over.
        messages.error(request, "That page link is no longer valid; showing the first page.")
        return redirect(_list_url(status, order))
    context = {
        "tasks": page.items,
        "next_url": _list_url(status, order, page.next_cursor) if page.next_cursor else None,
        "first_url": _list_url(status, order) if cursor else None,
        "filters": [(s, _list_url(s, order)) for s in STATUSES],
        "all_url": _list_url(None, order),
        "orders": [(o, label, _list_url(status, o)) for o, label in ORDER_LABELS.items()],
        "status": status,
        "order": order,
        "poll_seconds": LIST_POLL_SECONDS,
        "poll_url": request.get_full_path(),
    }
    template = "tasks/_task_list_live.html" if _is_htmx(request) else "tasks/task_list.html"
    return render_page(request, template, context)


def _list_url(status: str | None, order: str, cursor: str | None = None) -> str:
    params = {"status": status, "order": order if order != "newest" else None, "cursor": cursor}
    query = urlencode({k: v for k, v in params.items() if v})
    url = reverse("dashboard:task_list")
    return f"{url}?{query}" if query else url


@require_GET
@login_required
def task_go(request: HttpRequest) -> HttpResponse:
    """Jump to a task by its id (pasted from a log line, an API answer...)."""
    task_id = request.GET.get("id", "").strip().lower().replace("-", "")
    try:
        selectors.task_get(task_id=task_id)
    except NotFound:
        pass
    else:
        return redirect("dashboard:task_detail", task_id=task_id)
    shown = task_id[:64] or "(empty)"
    messages.error(request, f"No task has the id {shown}.")
    return redirect("dashboard:task_list")


# --- detail -------------------------------------------------------------------------


@require_GET
@login_required
def task_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    try:
        task = get_or_404(selectors.task_get, task_id=task_id)
    except Http404:
        return render_page(request, "tasks/not_found.html", {"task_id": task_id[:64]}, 404)
    context = {
        "task": task,
        "reschedule_form": _reschedule_form(request, task),
        "payload_json": json.dumps(public_payload(task.payload), indent=2, ensure_ascii=False),
        "attempts": list(reversed(task.attempt_history or [])),
        "poll_seconds": _detail_poll_seconds(task),
    }
    template = "tasks/_task_detail_live.html" if _is_htmx(request) else "tasks/task_detail.html"
    return render_page(request, template, context)


def _reschedule_form(request: HttpRequest, task: Task) -> RescheduleForm:
    """Prefilled with the task's next attempt, in the operator's timezone."""
    zone = operator_timezone(request)
    local = task.due_at.astimezone(zone).replace(tzinfo=None, microsecond=0)
    return RescheduleForm(initial={"run_at": local.isoformat(), "timezone": zone.key})


def _detail_poll_seconds(task: Task) -> int | None:
    """Poll fast while something is about to happen, slowly while a task waits
    for a later time, and not at all once it is finished."""
    if task.status == Status.RUNNING:
        return DETAIL_POLL_SECONDS
    if task.status != Status.SCHEDULED:
        return None
    soon = now() + timedelta(minutes=2)
    return DETAIL_POLL_SECONDS if task.due_at <= soon else DETAIL_IDLE_POLL_SECONDS


# --- operator commands --------------------------------------------------------------

COMMANDS = {
    "cancel": (commands.task_cancel, "Task cancelled."),
    "run_now": (commands.task_run_now, "Task moved to now; it runs within seconds."),
    "retry": (commands.task_retry, "Task scheduled again with a fresh round of attempts."),
}


@require_POST
@login_required
def task_command(request: HttpRequest, task_id: str, command: str) -> HttpResponse:
    service, done = COMMANDS[command]
    try:
        get_or_404(selectors.task_get, task_id=task_id)
        service(task_id=task_id)
    except Http404:
        return render_page(request, "tasks/not_found.html", {"task_id": task_id[:64]}, 404)
    except (Conflict, Unavailable) as exc:
        messages.error(request, as_sentence(exc.message))
    else:
        messages.success(request, done)
    return redirect("dashboard:task_detail", task_id=task_id)


@require_POST
@login_required
def task_reschedule(request: HttpRequest, task_id: str) -> HttpResponse:
    form = RescheduleForm(request.POST)
    try:
        get_or_404(selectors.task_get, task_id=task_id)
        if not form.is_valid():
            [first, *_] = [e for errors in form.errors.values() for e in errors]
            raise Invalid.one(["runAt"], first)
        commands.task_reschedule(task_id=task_id, run_at=form.cleaned_data["run_at_utc"])
    except Http404:
        return render_page(request, "tasks/not_found.html", {"task_id": task_id[:64]}, 404)
    except (Invalid, Conflict, Unavailable) as exc:
        messages.error(request, as_sentence(exc.message))
    else:
        messages.success(request, "Task rescheduled.")
    return redirect("dashboard:task_detail", task_id=task_id)


# --- create -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def task_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = TaskForm(request.POST)
        status = 400
        if not form.is_valid():
            # Say everything that is wrong at once, not what parsing found first.
            _check_parsed_fields(form)
        else:
            task, status = _create(request, form)
            if task is not None:
                if status == 200:
                    messages.error(request, "This form was already sent; this is the task it made.")
                else:
                    messages.success(request, "Task scheduled.")
                return redirect("dashboard:task_detail", task_id=task.id)
    else:
        form = TaskForm(initial=_initial(request))
        status = 200
    context = {"form": form, "clone_of": form["clone_of"].value() or ""}
    return render_page(request, "tasks/task_form.html", context, status)


def _initial(request: HttpRequest) -> dict[str, Any]:
    initial: dict[str, Any] = {"timezone": operator_timezone(request).key}
    source_id = request.GET.get("clone", "")
    if not source_id:
        return initial
    try:
        source = get_or_404(selectors.task_get, task_id=source_id)
    except Http404:
        return initial
    payload = public_payload(source.payload)
    data = payload.get("data")
    return {
        **initial,
        "url": payload.get("url", ""),
        "method": payload.get("method", "POST"),
        "headers": "\n".join(f"{k}: {v}" for k, v in (payload.get("headers") or {}).items()),
        "data": "" if data is None else json.dumps(data, indent=2, ensure_ascii=False),
        "max_attempts": source.max_attempts,
        "clone_of": source.id,
    }


def _create(request: HttpRequest, form: TaskForm) -> tuple[Task | None, int]:
    """Create the task; on failure put the service's errors on the form and
    return the HTTP status to answer with."""
    payload = form.payload()
    _restore_redacted_headers(payload, form.cleaned_data.get("clone_of") or "")
    created_by = f"operator:{request.operator.username}"
    submission = form.cleaned_data["submission"]
    try:
        task, created = creation.task_create(
            action="webhook",
            payload=payload,
            run_at=form.cleaned_data.get("run_at_utc"),
            max_attempts=form.cleaned_data["max_attempts"],
            idempotency_key=submission,
            created_by=created_by,
        )
    except Invalid as exc:
        form.add_service_errors(exc.errors)
        return None, 422
    except Conflict:
        # The same form sent again ("in 10 minutes" then means a slightly
        # later time, so the request differs): that is the task it made.
        task_id = creation.idempotent_task_id(created_by=created_by, idempotency_key=submission)
        return selectors.task_get(task_id=task_id), 200
    except Unavailable as exc:
        form.add_error(None, as_sentence(exc.message))
        return None, 503
    return task, 201 if created else 200


def _check_parsed_fields(form: TaskForm) -> None:
    try:
        creation.task_validate(
            action="webhook",
            payload=form.payload(),
            run_at=form.cleaned_data.get("run_at_utc"),
            max_attempts=form.cleaned_data.get("max_attempts"),
        )
    except Invalid as exc:
        form.add_service_errors(exc.errors)


def _restore_redacted_headers(payload: dict[str, Any], source_id: str) -> None:
    """A clone shows secret header values as [redacted]; left unchanged, they
    keep the source task's values, which the operator never sees."""
    headers = payload.get("headers") or {}
    if REDACTED not in headers.values():
        return
    try:
        source_headers = selectors.task_get(task_id=source_id).payload.get("headers") or {}
    except NotFound:
        return
    for name, value in headers.items():
        if value == REDACTED and name in source_headers:
            headers[name] = source_headers[name]
