"""The dashboard under API Gateway's stage prefix."""

from __future__ import annotations

import re

import pytest
from django.core.wsgi import get_wsgi_application
from django.urls import set_script_prefix
from werkzeug.test import Client as WerkzeugClient

from tests.factories import PASSWORD

# --- static files under the API Gateway stage prefix -----------------------------------


class Stage:
    """The real WSGI handler, called as API Gateway + Zappa call it: the stage
    name in SCRIPT_NAME, the rest in PATH_INFO (werkzeug builds the environ)."""

    def __init__(self, prefix: str = "/dev") -> None:
        # As in a fresh Lambda: the app (and whitenoise) loads outside any request.
        set_script_prefix("/")
        self.client = WerkzeugClient(get_wsgi_application())
        self.base = f"http://127.0.0.1{prefix}/"

    def get(self, path: str):
        return self.client.get(path, base_url=self.base)

    def post(self, path: str, data: dict):
        return self.client.post(path, data=data, base_url=self.base)

    def log_in(self, next_url: str = ""):
        page = self.get("/login/").get_data(as_text=True)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
        return self.post("/login/" + (f"?next={next_url}" if next_url else ""), form)


@pytest.fixture
def stage(operator):
    yield Stage()
    set_script_prefix("/")  # the prefix is process state; other tests expect none


def test_it_links_and_serves_static_files_under_the_stage_prefix(stage):
    page = stage.get("/login/").get_data(as_text=True)
    assert 'action="/dev/login/"' in page
    for name in ("dashboard.css", "dashboard.js", "vendor/htmx.min.js"):
        stem, ext = name.rsplit(".", 1)
        # Hashed names (collectstatic's manifest, as in production), under /dev.
        url = re.search(rf'"/dev(/static/tasks/{stem}\.[0-9a-f]{{12}}\.{ext})"', page).group(1)
        response = stage.get(url)
        assert response.status_code == 200
        assert "immutable" in response.headers["Cache-Control"]
    css = re.search(r'"/dev(/static/tasks/dashboard\.[0-9a-f]{12}\.css)"', page).group(1)
    assert "--scheduled" in stage.get(css).get_data(as_text=True)


def test_it_works_under_the_stage_prefix(stage):
    response = stage.get("/keys/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dev/login/?next=%2Fdev%2Fkeys%2F"
    login = stage.log_in(next_url="%2Fdev%2Fkeys%2F")
    assert login.headers["Location"] == "/dev/keys/"
    keys = stage.get("/keys/").get_data(as_text=True)
    assert 'action="/dev/keys/"' in keys
    assert 'action="/dev/logout/"' in keys
    assert 'href="/dev/tasks/new/"' in keys
