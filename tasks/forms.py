"""Dashboard forms. They only turn what a browser sends into the service's
arguments; every rule about a task is checked by services.creation.task_validate, and
its errors are shown beside the field they name."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from django import forms
from django.conf import settings

from tasks.actions import limits
from tasks.actions.webhook import METHODS

WHEN_IN = "in"
WHEN_AT = "at"


class LoginForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(
            attrs={"autocomplete": "username", "autocapitalize": "none", "autofocus": True}
        ),
    )
    password = forms.CharField(
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Who or what the key is for, e.g. “billing service”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


@cache
def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(available_timezones())]


class WebhookForm(forms.Form):
    """The webhook's fields, shared by the task and the schedule forms."""

    url = forms.CharField(
        label="URL",
        max_length=4096,
        widget=forms.TextInput(
            attrs={
                "inputmode": "url",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "https://example.com/hooks/reminder",
            }
        ),
    )
    method = forms.ChoiceField(choices=[(m, m) for m in METHODS], initial="POST")
    headers = forms.CharField(
        required=False,
        help_text="One per line: <code>Name: value</code>.",
        widget=forms.Textarea(
            attrs={"rows": 3, "spellcheck": "false", "placeholder": "X-Request-Source: dashboard"}
        ),
    )
    data = forms.CharField(
        label="JSON data",
        required=False,
        help_text="Sent as the request body. Leave empty for none.",
        widget=forms.Textarea(
            attrs={"rows": 6, "spellcheck": "false", "placeholder": '{"message": "Hello World"}'}
        ),
    )

    def clean_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["headers"].splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise forms.ValidationError(f"line {number}: write it as “Name: value”")
            headers[name.strip()] = value.strip()
        return headers

    def clean_data(self) -> Any:
        text = self.cleaned_data["data"].strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except RecursionError:
            raise forms.ValidationError(
                f"nested too deeply; the limit is {limits.MAX_DEPTH} levels"
            ) from None
        except ValueError:  # an integer past Python's digit limit for int()
            raise forms.ValidationError(
                "a number in it is too large; integers must be between -2**63 and 2**63-1"
            ) from None

    def payload(self) -> dict[str, Any]:
        """The webhook payload from the fields that parsed (all of them once
        the form is valid)."""
        data = self.cleaned_data
        payload: dict[str, Any] = {
            "url": data.get("url", "").strip(),
            "method": data.get("method") or "POST",
        }
        if data.get("headers"):
            payload["headers"] = data["headers"]
        if data.get("data") is not None:
            payload["data"] = data["data"]
        return payload


class TaskForm(WebhookForm):
    when = forms.ChoiceField(
        label="Run",
        choices=[(WHEN_IN, "In some minutes"), (WHEN_AT, "At a date and time")],
        initial=WHEN_IN,
        widget=forms.RadioSelect,
    )
    in_minutes = forms.IntegerField(
        label="Minutes from now",
        required=False,
        initial=0,
        min_value=0,
        help_text="0 runs it right away.",
    )
    run_at = forms.CharField(
        label="Date and time",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
    )
    timezone = forms.ChoiceField(choices=timezone_choices, initial="UTC")
    max_attempts = forms.IntegerField(
        label="Max attempts",
        help_text="Failed deliveries are retried with backoff until this many attempts.",
    )
    # A fresh key per rendered form, sent as the Idempotency-Key: a double
    # submit creates one task, not two.
    submission = forms.CharField(widget=forms.HiddenInput, max_length=64)
    clone_of = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["max_attempts"].initial = settings.TASK_DEFAULT_MAX_ATTEMPTS
        self.fields["max_attempts"].widget.attrs.update(
            {"min": 1, "max": settings.TASK_MAX_ATTEMPTS_LIMIT}
        )
        self.fields["submission"].initial = uuid.uuid4().hex

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("when") == WHEN_AT:
            cleaned["run_at_utc"] = self._local_run_at(cleaned)
        elif cleaned.get("when") == WHEN_IN:
            minutes = cleaned.get("in_minutes")
            if minutes is None and "in_minutes" not in self.errors:
                self.add_error("in_minutes", "How many minutes from now?")
            elif minutes is not None:
                # Capped so that absurd numbers reach the service's horizon
                # check instead of overflowing datetime.
                minutes = min(minutes, 10 * 366 * 24 * 60)
                cleaned["run_at_utc"] = datetime.now(UTC) + timedelta(minutes=minutes)
        return cleaned

    def _local_run_at(self, cleaned: dict[str, Any]) -> datetime | None:
        return local_run_at(self, cleaned)

    def add_service_errors(self, errors: list[dict]) -> None:
        """Show Invalid errors beside their fields; a field that already
        has an error from parsing keeps just that one."""
        when = self.cleaned_data.get("when", WHEN_IN)
        for error in errors:
            field = field_for_error(error["loc"], when)
            if field is None or field not in self.errors:
                self.add_error(field, error["msg"])


def local_run_at(form: forms.Form, cleaned: dict[str, Any]) -> datetime | None:
    """The form's `run_at` (a wall-clock time) in its `timezone`, as UTC; on
    a problem, an error on the run_at field and None."""
    text, zone_name = cleaned.get("run_at"), cleaned.get("timezone")
    if not text:
        form.add_error("run_at", "Pick a date and time.")
        return None
    if not zone_name:
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        form.add_error("run_at", "Use the form YYYY-MM-DDTHH:MM.")
        return None
    if local.tzinfo is not None:
        form.add_error("run_at", "Give the time without an offset; pick the timezone below.")
        return None
    zone = ZoneInfo(zone_name)
    aware = local.replace(tzinfo=zone)
    # A wall-clock time skipped by a daylight-saving change does not
    # survive the round trip; say so rather than guess.
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        form.add_error("run_at", f"{text} does not exist in {zone_name} (the clocks change).")
        return None
    return aware.astimezone(UTC)


class RescheduleForm(forms.Form):
    """A new run time for a scheduled task; the service checks it as it
    checks a new task's."""

    run_at = forms.CharField(
        label="New date and time",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
    )
    timezone = forms.ChoiceField(choices=timezone_choices, initial="UTC")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "run_at" not in self.errors:
            cleaned["run_at_utc"] = local_run_at(self, cleaned)
        return cleaned


# Where each error of task_validate is shown: by its loc.
FIELD_BY_LOC = {
    ("payload", "url"): "url",
    ("payload", "method"): "method",
    ("payload", "headers"): "headers",
    ("payload", "data"): "data",
    ("payload",): "data",
    ("maxAttempts",): "max_attempts",
}


def field_for_error(loc: list, when: str | None) -> str | None:
    """The form field an Invalid error belongs to, or None for the form."""
    key = tuple(str(part) for part in loc)
    if key[:1] == ("runAt",):
        return "run_at" if when == WHEN_AT else "in_minutes"
    for length in (2, 1):
        if key[:length] in FIELD_BY_LOC:
            return FIELD_BY_LOC[key[:length]]
    return None


KIND_CRON = "cron"
KIND_RATE = "rate"


class ScheduleForm(WebhookForm):
    """A recurring schedule: the webhook, and a cron or a rate in a timezone.
    Every rule is checked by services.recurring.schedule_validate."""

    kind = forms.ChoiceField(
        label="Repeat",
        choices=[(KIND_CRON, "On a cron schedule"), (KIND_RATE, "Every so often")],
        initial=KIND_CRON,
        widget=forms.RadioSelect,
    )
    cron = forms.CharField(
        label="Cron",
        required=False,
        max_length=200,
        help_text="Unix cron, 5 fields: minute hour day-of-month month day-of-week.",
        widget=forms.TextInput(
            attrs={"spellcheck": "false", "autocomplete": "off", "placeholder": "0 9 * * MON-FRI"}
        ),
    )
    rate = forms.CharField(
        label="Every",
        required=False,
        max_length=64,
        help_text="A number and minutes, hours or days; at least 1 minute.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "5 minutes"}),
    )
    timezone = forms.ChoiceField(choices=timezone_choices, initial="UTC")
    max_attempts = forms.IntegerField(
        label="Max attempts",
        help_text="Per occurrence: a failed delivery is retried with backoff until this many.",
    )
    description = forms.CharField(
        required=False,
        max_length=256,
        widget=forms.TextInput(attrs={"placeholder": "Morning report"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["max_attempts"].initial = settings.TASK_DEFAULT_MAX_ATTEMPTS
        self.fields["max_attempts"].widget.attrs.update(
            {"min": 1, "max": settings.TASK_MAX_ATTEMPTS_LIMIT}
        )

    def recurrence(self) -> dict[str, Any]:
        """cron or rate (by the kind chosen) and the timezone, as the service takes them."""
        data = self.cleaned_data
        kind = data.get("kind") or KIND_CRON
        return {
            "cron": (data.get("cron") or "") if kind == KIND_CRON else None,
            "rate": (data.get("rate") or "") if kind == KIND_RATE else None,
            "timezone": data.get("timezone") or "UTC",
        }

    def values(self) -> dict[str, Any]:
        """Every field as services.recurring takes them."""
        return {
            "action": "webhook",
            "payload": self.payload(),
            **self.recurrence(),
            "max_attempts": self.cleaned_data.get("max_attempts"),
            "description": self.cleaned_data.get("description") or None,
        }

    def add_service_errors(self, errors: list[dict]) -> None:
        for error in errors:
            key = tuple(str(part) for part in error["loc"])
            field = SCHEDULE_FIELD_BY_LOC.get(key[:1]) or field_for_error(error["loc"], None)
            if field is None or field not in self.errors:
                self.add_error(field, error["msg"])


SCHEDULE_FIELD_BY_LOC = {
    ("cron",): "cron",
    ("rate",): "rate",
    ("timezone",): "timezone",
    ("description",): "description",
}
