"""API keys in the dashboard."""

from __future__ import annotations

import re

from django.test import Client

from tasks.models import ApiKey
from tasks.services import access
from tests.factories import field_error

# --- API keys ---------------------------------------------------------------------------


def test_it_creates_an_api_key_and_shows_it_once(dash, client):
    response = dash.post("/keys/", {"name": "billing service"})
    assert response.status_code == 201
    raw = re.search(r'<code id="new-key">(tsk_[^<]+)</code>', response.content.decode()).group(1)
    assert "no-store" in response["Cache-Control"]
    key = access.apikey_authenticate(raw_key=raw)
    assert key is not None and key.name == "billing service"
    assert ApiKey.get(key.key_hash).prefix == raw[:10]

    listing = dash.get("/keys/").content.decode()
    assert "billing service" in listing
    assert raw not in listing
    api = Client()
    assert api.get("/api/tasks", headers={"Authorization": f"Bearer {raw}"}).status_code == 200


def test_it_revokes_an_api_key(dash):
    key, raw = access.apikey_create(name="old integration")
    response = dash.post(f"/keys/{key.key_id}/revoke/", follow=True)
    assert "revoked" in response.content.decode()
    assert ApiKey.get(key.key_hash).revoked_at is not None
    api = Client()
    assert api.get("/api/tasks", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_it_refuses_a_key_without_a_name(dash):
    response = dash.post("/keys/", {"name": "   "})
    assert response.status_code == 400
    assert "This field is required." in field_error(response.content.decode(), "name")
    assert list(ApiKey.scan()) == []


def test_it_revokes_only_by_exact_key_id(dash):
    key, _raw = access.apikey_create(name="shared name")
    dash.post("/keys/shared name/revoke/")
    assert ApiKey.get(key.key_hash).revoked_at is None
