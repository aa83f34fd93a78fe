"""Dashboard pages about recurring schedules: list, detail with occurrences,
create and edit (with a live preview), pause, resume, delete. Thin: every
rule is the services' (services.recurring) and the selectors'."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tasks import recurrence, selectors
from tasks.errors import Conflict, Invalid, InvalidCursor, Unavailable
from tasks.forms import KIND_CRON, KIND_RATE, ScheduleForm
from tasks.models import PAUSE, RESUME, Schedule
from tasks.schemas import public_payload
from tasks.services import recurring
from tasks.views.auth import (
    as_sentence,
    get_or_404,
    login_required,
    operator_timezone,
    render_page,
)

PAGE_SIZE = 25
OCCURRENCES_SHOWN = 25


def _summary(schedule: Schedule) -> str:
    return recurrence.describe(cron=schedule.cron, rate=schedule.rate, timezone=schedule.timezone)


@require_GET
@login_required
def schedule_list(request: HttpRequest) -> HttpResponse:
    cursor = request.GET.get("cursor") or None
    try:
        page = selectors.schedule_list(limit=PAGE_SIZE, cursor=cursor)
    except InvalidCursor:
        messages.error(request, "That page link is no longer valid; showing the first page.")
        return redirect("dashboard:schedule_list")
    last = selectors.schedule_last_occurrences(schedule_ids=[s.id for s in page.items])
    rows = [
        {
            "schedule": schedule,
            "summary": _summary(schedule),
            "next_run": next(iter(selectors.schedule_next_runs(schedule, count=1)), None),
            "last": last.get(schedule.id),
        }
        for schedule in page.items
    ]
    context = {"rows": rows, "next_cursor": page.next_cursor, "first_page": cursor is None}
    return render_page(request, "tasks/schedule_list.html", context)


@require_GET
@login_required
def schedule_detail(request: HttpRequest, schedule_id: str) -> HttpResponse:
    try:
        schedule = get_or_404(selectors.schedule_get, schedule_id=schedule_id)
    except Http404:
        return render_page(
            request, "tasks/schedule_not_found.html", {"schedule_id": schedule_id[:64]}, 404
        )
    occurrences = selectors.task_list(schedule_id=schedule.id, limit=OCCURRENCES_SHOWN)
    context = {
        "schedule": schedule,
        "summary": _summary(schedule),
        "next_runs": selectors.schedule_next_runs(schedule),
        "payload_json": json.dumps(public_payload(schedule.payload), indent=2, ensure_ascii=False),
        "occurrences": occurrences.items,
        "more_occurrences": occurrences.next_cursor is not None,
        "can_pause": PAUSE.allows(schedule),
        "can_resume": RESUME.allows(schedule),
    }
    return render_page(request, "tasks/schedule_detail.html", context)


COMMANDS = {
    "pause": (recurring.schedule_pause, "Schedule paused: it makes no occurrences until resumed."),
    "resume": (recurring.schedule_resume, "Schedule resumed from its next time."),
}


@require_POST
@login_required
def schedule_command(request: HttpRequest, schedule_id: str, command: str) -> HttpResponse:
    try:
        get_or_404(selectors.schedule_get, schedule_id=schedule_id)
        if command == "delete":
            recurring.schedule_delete(schedule_id=schedule_id)
        else:
            COMMANDS[command][0](schedule_id=schedule_id)
    except Http404:
        return render_page(
            request, "tasks/schedule_not_found.html", {"schedule_id": schedule_id[:64]}, 404
        )
    except (Conflict, Unavailable) as exc:
        messages.error(request, as_sentence(exc.message))
    else:
        if command == "delete":
            messages.success(request, "Schedule deleted. Its occurrences are kept as tasks.")
            return redirect("dashboard:schedule_list")
        messages.success(request, COMMANDS[command][1])
    return redirect("dashboard:schedule_detail", schedule_id=schedule_id)


# --- create and edit -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def schedule_new(request: HttpRequest) -> HttpResponse:
    return _form_page(request, None)


@require_http_methods(["GET", "POST"])
@login_required
def schedule_edit(request: HttpRequest, schedule_id: str) -> HttpResponse:
    try:
        schedule = get_or_404(selectors.schedule_get, schedule_id=schedule_id)
    except Http404:
        return render_page(
            request, "tasks/schedule_not_found.html", {"schedule_id": schedule_id[:64]}, 404
        )
    return _form_page(request, schedule)


def _form_page(request: HttpRequest, schedule: Schedule | None) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = ScheduleForm(request.POST)
        status = 400
        if form.is_valid():
            saved = _save(request, form, schedule)
            if saved is not None:
                messages.success(request, "Schedule saved." if schedule else "Schedule created.")
                return redirect("dashboard:schedule_detail", schedule_id=saved.id)
            status = 422
        else:
            _check(form)
    else:
        initial = _initial(schedule) if schedule else {"timezone": operator_timezone(request).key}
        form = ScheduleForm(initial=initial)
    context = {"form": form, "schedule": schedule, "preview": _preview_context(form)}
    return render_page(request, "tasks/schedule_form.html", context, status)


def _save(request: HttpRequest, form: ScheduleForm, schedule: Schedule | None) -> Schedule | None:
    values = form.values()
    try:
        if schedule is None:
            return recurring.schedule_create(
                **values, created_by=f"operator:{request.operator.username}"
            )
        return recurring.schedule_update(schedule_id=schedule.id, changes=values)
    except Invalid as exc:
        form.add_service_errors(exc.errors)
    except (Conflict, Unavailable) as exc:
        form.add_error(None, as_sentence(exc.message))
    return None


def _check(form: ScheduleForm) -> None:
    """Say everything that is wrong at once, not only what parsing found."""
    try:
        recurring.schedule_validate(**form.values())
    except Invalid as exc:
        form.add_service_errors(exc.errors)


def _initial(schedule: Schedule) -> dict[str, Any]:
    payload = public_payload(schedule.payload)
    data = payload.get("data")
    return {
        "url": payload.get("url", ""),
        "method": payload.get("method", "POST"),
        "headers": "\n".join(f"{k}: {v}" for k, v in (payload.get("headers") or {}).items()),
        "data": "" if data is None else json.dumps(data, indent=2, ensure_ascii=False),
        "kind": KIND_RATE if schedule.rate else KIND_CRON,
        "cron": schedule.cron or "",
        "rate": schedule.rate or "",
        "timezone": schedule.timezone,
        "max_attempts": schedule.max_attempts,
        "description": schedule.description or "",
    }


# --- the live preview --------------------------------------------------------------------


@require_GET
@login_required
def schedule_preview(request: HttpRequest) -> HttpResponse:
    """The description and next 5 runs of the cron or rate being typed (an
    htmx fragment for the form)."""
    form = ScheduleForm(request.GET)
    form.is_valid()  # only the recurrence fields matter here
    return render_page(request, "tasks/_schedule_preview.html", _preview_context(form))


def _preview_context(form: ScheduleForm) -> dict[str, Any]:
    if not form.is_bound:
        return {"summary": None, "runs": [], "problem": None}
    values = form.recurrence() if hasattr(form, "cleaned_data") else {}
    cron, rate, timezone = values.get("cron"), values.get("rate"), values.get("timezone", "UTC")
    if not (cron or rate):
        return {"summary": None, "runs": [], "problem": None}
    try:
        if cron:
            expression = recurrence.cron_to_eventbridge(cron)
        else:
            expression = recurrence.rate_to_eventbridge(rate)
        recurrence.zone(timezone)
        preview = Schedule(
            expression=expression,
            cron=cron or None,
            rate=rate or None,
            timezone=timezone,
            state="enabled",
            created_at=recurring.now(),
        )
        runs = selectors.schedule_next_runs(preview)
        summary = recurrence.describe(cron=cron, rate=rate, timezone=timezone)
    except recurrence.ExpressionError as exc:
        return {"summary": None, "runs": [], "problem": str(exc), "expression": None}
    return {"summary": summary, "runs": runs, "problem": None, "expression": expression}
