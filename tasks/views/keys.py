"""The API keys page: create (the key is shown once), list, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from tasks.errors import Conflict, Invalid, NotFound
from tasks.forms import ApiKeyForm
from tasks.services import access
from tasks.views.auth import login_required, render_page


@require_http_methods(["GET", "POST"])
@login_required
def key_list(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    created = None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                key, raw = access.apikey_create(name=form.cleaned_data["name"])
            except Invalid as exc:
                form.add_error("name", exc.message.capitalize() + ".")
            else:
                # Rendered into this response only (never a redirect through
                # the session cookie); the page is sent with no-store.
                created = {"key": key, "raw": raw}
                form = ApiKeyForm()
                status = 201
    context = {"form": form, "keys": access.apikey_list(), "created": created}
    return render_page(request, "tasks/keys.html", context, status)


@require_POST
@login_required
def key_revoke(request: HttpRequest, key_id: str) -> HttpResponse:
    # Only exact key ids: the service also matches names and prefixes, which a
    # form button never needs.
    if not any(k.key_id == key_id for k in access.apikey_list()):
        messages.error(request, "No such API key.")
        return redirect("dashboard:keys")
    try:
        key = access.apikey_revoke(key_id=key_id)
    except (NotFound, Conflict) as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"API key “{key.name}” revoked; requests with it now get 401.")
    return redirect("dashboard:keys")
