"""Dashboard login: a tiny session login for operators (no django.contrib.auth,
which needs a SQL database), the login_required decorator and the response
headers every dashboard page gets."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import rotate_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from pynamodb.exceptions import DoesNotExist

from tasks.errors import NotFound
from tasks.forms import LoginForm
from tasks.models import Operator
from tasks.services import access

SESSION_OPERATOR = "dashboard_operator"
SESSION_AUTH_HASH = "dashboard_auth_hash"
TIMEZONE_COOKIE = "tz"

View = Callable[..., HttpResponse]


def _auth_hash(operator: Operator) -> str:
    # Bound to the password hash, so a password change ends every session made
    # with the old password (signed-cookie sessions cannot be revoked otherwise).
    return salted_hmac(
        "tasks.dashboard.session", operator.password_hash, algorithm="sha256"
    ).hexdigest()


def current_operator(request: HttpRequest) -> Operator | None:
    username = request.session.get(SESSION_OPERATOR)
    if not isinstance(username, str):
        return None
    try:
        operator = Operator.get(username)
    except DoesNotExist:
        return None
    if not constant_time_compare(request.session.get(SESSION_AUTH_HASH, ""), _auth_hash(operator)):
        return None
    return operator


@cache
def _timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def operator_timezone(request: HttpRequest) -> ZoneInfo:
    """The browser's timezone (a cookie set by dashboard.js), else UTC."""
    name = request.COOKIES.get(TIMEZONE_COOKIE, "")
    return ZoneInfo(name) if name in _timezone_names() else ZoneInfo("UTC")


def login_required(view: View) -> View:
    """Every dashboard page: an operator session, the operator's timezone,
    and no caching of what the page shows."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        operator = current_operator(request)
        if operator is None:
            return _to_login(request)
        request.operator = operator
        with timezone.override(operator_timezone(request)):
            return view(request, *args, **kwargs)

    return wrapper


def _to_login(request: HttpRequest) -> HttpResponse:
    login_url = reverse("dashboard:login")
    if request.headers.get("HX-Request"):
        # A poll from a page whose session ended: load the login page as a
        # whole page instead of swapping it into a fragment.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = login_url
        return response
    target = request.get_full_path() if request.method == "GET" else ""
    if target and target != reverse("dashboard:task_list"):
        login_url += "?" + urlencode({"next": target})
    return HttpResponseRedirect(login_url)


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("dashboard:task_list")


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next")
    if current_operator(request) is not None:
        return redirect(_safe_next(request, next_url))
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            operator = access.operator_authenticate(
                username=form.cleaned_data["username"], password=form.cleaned_data["password"]
            )
        except access.LoginLocked:
            operator = None
        if operator is not None:
            _start_session(request, operator)
            return redirect(_safe_next(request, next_url))
        # One answer for a wrong password, an unknown user and a locked
        # account, so that the lockout does not reveal which accounts exist.
        form.add_error(
            None,
            f"Wrong username or password. After {access.LOGIN_MAX_FAILURES} failed "
            f"attempts an account is locked for {access.LOGIN_LOCK_MINUTES} minutes.",
        )
        status = 400
    elif request.method == "POST":
        status = 400
    return render(
        request, "tasks/login.html", {"form": form, "next": next_url or ""}, status=status
    )


def _start_session(request: HttpRequest, operator: Operator) -> None:
    # A new session and a new CSRF token on login, as django.contrib.auth does:
    # a session or token planted before login is worth nothing after it.
    request.session.cycle_key()
    rotate_token(request)
    request.session[SESSION_OPERATOR] = operator.username
    request.session[SESSION_AUTH_HASH] = _auth_hash(operator)
    request.session.set_expiry(settings.SESSION_COOKIE_AGE)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return redirect("dashboard:login")


def as_sentence(message: str) -> str:
    """A service's message ("task is running; ...") as a sentence to show."""
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else message + "."


def get_or_404[T](get: Callable[..., T], **key: str) -> T:
    """What a selector finds by its key (`get_or_404(selectors.task_get,
    task_id=...)`), or Http404 for what it does not (NotFound)."""
    try:
        return get(**key)
    except NotFound as exc:
        raise Http404(exc.message) from None


def render_page(
    request: HttpRequest, template: str, context: dict | None = None, status: int = 200
) -> HttpResponse:
    """Render a dashboard page with the operator (every page shows who is
    logged in). One-time messages are django.contrib.messages'; a poll's
    fragment does not show them, so it leaves them for the next page."""
    context = {"operator": getattr(request, "operator", None), **(context or {})}
    content = render_to_string(template, context, request)
    # A lone surrogate in a stored task (accepted before the payload rules
    # refused them) cannot be encoded as UTF-8: show it escaped, as \ud800,
    # rather than fail the page.
    return HttpResponse(content.encode("utf-8", "backslashreplace"), status=status)
