"""Hostile input (issue 10): every bad request is a 4xx with a message, on the
API and in the dashboard's New task form; nothing unsendable is stored; no
page answers 500, even for odd data stored before these rules."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest

from tasks import scheduler, selectors
from tasks.actions.limits import MAX_DEPTH
from tasks.models import Task
from tasks.services import access, creation
from tests.factories import field_error, form_data, future, task_body

PASSWORD = "correct horse battery"
PATHS = ["/api/tasks", "/schedule-task"]


@pytest.fixture
def dash(client, aws, settings, collected_static):
    """A client with an operator session (as tests/test_dashboard.py's)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    access.operator_create(username="alice", password=PASSWORD)
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture
def raw_post(client, api_key):
    """POST a body exactly as given (for JSON that json.dumps cannot make)."""

    def post(path: str, raw: str | bytes, **headers):
        return client.post(
            path,
            raw,
            content_type="application/json",
            headers={"Authorization": f"Bearer {api_key}", **headers},
        )

    return post


def nothing_stored(settings) -> bool:
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)
    return list(Task.scan()) == [] and schedules["Schedules"] == []


def body_with_data(data_json: str, **payload) -> str:
    """A create body whose payload.data is the JSON text given, as is."""
    body = task_body(payload={"url": "https://example.com/hook", "data": "@DATA@", **payload})
    return json.dumps(body).replace('"@DATA@"', data_json)


def deep(depth: int, kind: str = "[") -> str:
    close = "]" if kind == "[" else "}"
    opener = "[" if kind == "[" else '{"a":'
    return opener * depth + "1" * (kind == "[") + "null" * (kind == "{") + close * depth


# --- payload.data: depth, Unicode, numbers ---------------------------------------------

# (case, payload.data as JSON text, words in the message)
BAD_DATA = [
    ("65 levels of arrays", deep(MAX_DEPTH + 1), "nested more than 64 levels"),
    ("256 levels of arrays", deep(256), "nested more than 64 levels"),
    ("256 levels of objects", deep(256, "{"), "nested more than 64 levels"),
    ("5,000 levels", deep(5000), "nested more than 64 levels"),
    ("lone surrogate in a value", '{"a": "\\ud800"}', "not valid Unicode"),
    ("lone low surrogate", '["ok", "x\\udfff"]', "not valid Unicode"),
    ("lone surrogate in a key", '{"\\udc00": 1}', "not valid Unicode"),
    ("surrogate deep inside", '{"a": [{"b": "\\ud83d"}]}', "data.a[0].b"),
    ("integer past 64 bits", "18446744073709551616", "out of range"),
    ("4,000-digit integer", "9" * 4000, "out of range"),
    ("key too long", json.dumps({"k" * 300: 1}), "the limit is 256"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("data", "words"), [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_it_refuses_unsendable_data_on_the_api_with_422(raw_post, settings, path, data, words):
    response = raw_post(path, body_with_data(data))
    assert response.status_code == 422, response.content
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "payload", "data"]
    assert words in error["msg"]
    assert nothing_stored(settings)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "data",
    [deep(10_000), deep(10_000, "{"), "9" * 5000],
    ids=["10,000 levels", "10,000 objects", "5,000 digits"],
)
def test_it_refuses_json_the_parser_cannot_read_with_400(raw_post, settings, path, data):
    response = raw_post(path, body_with_data(data))
    assert response.status_code == 400
    assert response.json() == {"detail": "Cannot parse request body"}
    assert nothing_stored(settings)


def test_it_still_accepts_data_at_the_limits(api):
    data = json.loads(deep(MAX_DEPTH))
    body = task_body(payload={"url": "https://example.com/hook", "data": data})
    response = api.post("/api/tasks", body)
    assert response.status_code == 201, response.content
    assert Task.get(response.json()["id"]).payload["data"] == data
    body["payload"]["data"] = {"n": 2**63 - 1, "m": -(2**63), "s": "😀 漢字 \x00"}
    assert api.post("/api/tasks", body).status_code == 201


@pytest.mark.parametrize(("data", "words"), [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_it_refuses_unsendable_data_in_the_form(dash, settings, data, words):
    response = dash.post("/tasks/new/", form_data(data=data))
    assert response.status_code == 422
    assert words in field_error(response.content.decode(), "data")
    assert nothing_stored(settings)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (deep(10_000), "nested too deeply; the limit is 64 levels"),
        (deep(10_000, "{"), "nested too deeply; the limit is 64 levels"),
        ("9" * 5000, "too large"),
        ('{"n": ' + "9" * 5000 + "}", "too large"),
    ],
    ids=["10,000 levels", "10,000 objects", "5,000 digits", "5,000 digits inside"],
)
def test_it_refuses_json_the_parser_cannot_read_in_the_form(dash, settings, data, words):
    response = dash.post("/tasks/new/", form_data(data=data))
    assert response.status_code == 400
    assert words in field_error(response.content.decode(), "data")
    assert nothing_stored(settings)


# --- headers and URLs --------------------------------------------------------------------

BAD_PAYLOADS = [
    ("header name with a newline", {"headers": {"X-Foo\n": "v"}}, "headers", "invalid header name"),
    ("Host with a newline", {"headers": {"Host\n": "evil"}}, "headers", "invalid header name"),
    ("NUL in a value", {"headers": {"X-A": "a\x00b"}}, "headers", "control character"),
    ("vertical tab in a value", {"headers": {"X-A": "a\x0bb"}}, "headers", "control character"),
    ("form feed in a value", {"headers": {"X-A": "a\x0cb"}}, "headers", "control character"),
    ("DEL in a value", {"headers": {"X-A": "a\x7fb"}}, "headers", "control character"),
    ("euro sign in a value", {"headers": {"X-A": "10 €"}}, "headers", "printable ascii"),
    ("lone surrogate in a value", {"headers": {"X-A": "\ud800"}}, "headers", "printable ascii"),
    ("lone surrogate in a name", {"headers": {"X-\ud800": "v"}}, "headers", "invalid header name"),
    ("url with a newline", {"url": "https://example.com/a\nb"}, "url", "control characters"),
    ("url with a lone surrogate", {"url": "https://example.com/\ud800"}, "url", "unicode"),
    ("url with a backslash", {"url": "https://example.com\\@evil.test/"}, "url", "backslash"),
    ("url with a numeric host", {"url": "http://2130706433/"}, "url", "dotted-decimal"),
    ("site-local", {"url": "http://[fec0::1]/"}, "url", "site-local"),
    ("6to4 metadata", {"url": "http://[2002:a9fe:a9fe::1]/"}, "url", "metadata"),
    ("Teredo metadata", {"url": "http://[2001:0:4136:e378:8000:63bf:5601:5601]/"}, "url", "metadata"),
    ("NAT64 metadata", {"url": "http://[64:ff9b:1::a9fe:a9fe]/"}, "url", "metadata"),
]  # fmt: skip


@pytest.mark.parametrize("allow_private", [False, True], ids=["strict", "local mode"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("change", "field", "words"),
    [c[1:] for c in BAD_PAYLOADS],
    ids=[c[0] for c in BAD_PAYLOADS],
)
def test_it_refuses_headers_and_urls_that_cannot_be_sent(
    api, settings, path, change, field, words, allow_private
):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = allow_private
    body = task_body()
    body["payload"].update(change)
    response = api.post(path, body)
    assert response.status_code == 422, response.content
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "payload", field]
    assert words in error["msg"].lower()
    assert nothing_stored(settings)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"headers": "X-A: 10 €"}, "headers", "printable ASCII"),
        ({"headers": "X-A: a\x7fb"}, "headers", "control character"),
        ({"headers": "Host : evil"}, "headers", "set by the scheduler"),
        ({"headers": "X Foo: v"}, "headers", "invalid header name"),
        ({"headers": "X-A: 1\nx-a: 2"}, "headers", "given twice"),
        ({"url": "http://[fec0::1]/"}, "url", "site-local"),
        ({"url": "http://[64:ff9b:1::a9fe:a9fe]/"}, "url", "metadata"),
        ({"url": "http://0x7f.1/"}, "url", "dotted-decimal"),
        ({"url": "https://faß.de/"}, "url", "xn-- form"),
    ],
    ids=["euro", "DEL", "Host", "space in name", "twice", "site-local", "NAT64", "hex host", "ß"],
)
def test_it_refuses_headers_and_urls_in_the_form(dash, settings, fields, field, words):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True  # metadata stays refused in the local mode
    response = dash.post("/tasks/new/", form_data(**fields))
    assert response.status_code == 422
    assert words in field_error(response.content.decode(), field)
    assert nothing_stored(settings)


def test_it_stores_a_url_normalised_on_the_api_and_in_the_form(api, dash):
    body = task_body(payload={"url": "https://Bücher.example/straße a?q=ä"})
    response = api.post("/api/tasks", body)
    assert response.status_code == 201, response.content
    normal = "https://xn--bcher-kva.example/stra%C3%9Fe%20a?q=%C3%A4"
    assert response.json()["payload"]["url"] == normal
    assert Task.get(response.json()["id"]).payload["url"] == normal

    response = dash.post("/tasks/new/", form_data(url="https://Bücher.example/straße a?q=ä"))
    assert response.status_code == 302
    assert Task.get(response["Location"].split("/")[2]).payload["url"] == normal


def test_it_delivers_a_normalised_url_to_the_receiver_as_encoded(aws, receiver, monkeypatch):
    from tasks.executor import run_task

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # the IDNA name, as DNS would see it
        if host == "xn--bcher-kva.test":
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    receiver.expect_request("/straße a").respond_with_data("ok")
    url = f"http://bücher.test:{receiver.port}/straße a?q=ä ö"
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": url, "headers": {"X-Trace": "a\tb"}, "data": {"s": "😀"}},
        run_at=datetime.now(UTC),
    )
    assert run_task({"task_id": task.id})["result"] == "completed"
    [(request, _response)] = receiver.log
    assert request.environ["REQUEST_URI"] == "/stra%C3%9Fe%20a?q=%C3%A4%20%C3%B6"
    assert request.headers["Host"] == f"xn--bcher-kva.test:{receiver.port}"
    assert request.headers["X-Trace"] == "a\tb"
    assert json.loads(request.get_data()) == {"s": "😀"}


# --- runAt and the OpenAPI schema ----------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "run_at",
    [
        lambda: int((datetime.now(UTC) + timedelta(hours=1)).timestamp()),
        lambda: (datetime.now(UTC) + timedelta(hours=1)).timestamp(),
        lambda: str(int((datetime.now(UTC) + timedelta(hours=1)).timestamp())),
        lambda: True,
        lambda: None,
        lambda: {"at": future()},
    ],
    ids=["unix integer", "unix float", "unix digits as a string", "true", "null", "object"],
)
def test_it_refuses_a_run_at_that_is_not_an_iso_string(api, settings, path, run_at):
    response = api.post(path, task_body(runAt=run_at()))
    assert response.status_code == 422, response.content
    [error] = response.json()["detail"]
    assert error["loc"][-1] == "runAt"
    assert "ISO-8601" in error["msg"]
    assert nothing_stored(settings)


@pytest.mark.parametrize(
    "shape",
    [
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        lambda t: t.strftime("%Y-%m-%dt%H:%M:%Sz"),
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
        lambda t: t.strftime("%Y%m%dT%H%M%SZ"),
    ],
    ids=["RFC 3339", "lower-case t and z", "fraction and offset", "basic format"],
)
def test_it_accepts_iso_8601_run_at_forms(api, shape):
    response = api.post(
        "/api/tasks", task_body(runAt=shape(datetime.now(UTC) + timedelta(hours=2)))
    )
    assert response.status_code == 201, response.content


def test_the_openapi_schema_states_the_rules(client):
    schema = client.get("/api/openapi.json").json()
    operation = schema["paths"]["/api/tasks"]["post"]
    [key] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header"
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    task_in = schema["components"]["schemas"]["TaskIn"]
    run_at = task_in["properties"]["runAt"]
    assert run_at["type"] == "string" and run_at["format"] == "date-time"
    assert "not a Unix timestamp" in run_at["description"]
    payload = task_in["properties"]["payload"]
    assert payload["required"] == ["url"]
    assert payload["properties"]["url"]["maxLength"] == 2048
    assert payload["properties"]["headers"]["maxProperties"] == 20
    assert "64 levels" in payload["properties"]["data"]["description"]
    attempts = task_in["properties"]["maxAttempts"]
    assert (attempts["minimum"], attempts["maximum"]) == (1, 10)


def test_the_openapi_examples_are_accepted(client, api):
    task_in = client.get("/api/openapi.json").json()["components"]["schemas"]["TaskIn"]
    body = {name: prop["examples"][0] for name, prop in task_in["properties"].items()}
    response = api.post("/api/tasks", body)
    assert response.status_code == 201, response.content
    # and with the Idempotency-Key at its documented bounds
    assert api.post("/api/tasks", body, **{"Idempotency-Key": "k"}).status_code == 201
    assert api.post("/api/tasks", body, **{"Idempotency-Key": "k" * 255}).status_code == 201
    assert api.post("/api/tasks", body, **{"Idempotency-Key": "k" * 256}).status_code == 422


# --- pages with odd data stored before these rules -----------------------------------------

ODD_PAYLOADS = [
    {"url": "https://example.com/\ud800", "data": {"a": "\ud800", "\udc00": ["\udfff"]}},
    {"url": "https://example.com/hook", "headers": {"X-A": "\ud800", "X-B": "10 €"}},
    {"url": "https://example.com/a b", "data": {"n": 10**40}},
]


@pytest.fixture
def odd_task(aws, request):
    """A task stored directly with a payload today's rules refuse, as one
    accepted before them would be."""
    now = datetime.now(UTC)
    task = Task(
        id="ef" * 16,
        action="webhook",
        payload=request.param,
        run_at=now + timedelta(hours=1),
        due_at=now + timedelta(hours=1),
        status="scheduled",
        attempts=0,
        max_attempts=3,
        schedule_name="ef" * 16 + "-1",
        schedule_seq=1,
        listing="task",
        created_at=now,
        updated_at=now,
    )
    task.save()
    return task


@pytest.mark.parametrize(
    "odd_task", ODD_PAYLOADS, indirect=True, ids=["surrogates", "headers", "url"]
)
def test_pages_show_odd_stored_data_without_a_500(dash, api, odd_task):
    for url in ("/", f"/tasks/{odd_task.id}/", f"/tasks/new/?clone={odd_task.id}"):
        response = dash.get(url)
        assert response.status_code == 200, url
        response.content.decode("utf-8")
    detail = dash.get(f"/tasks/{odd_task.id}/", headers={"HX-Request": "true"})
    assert detail.status_code == 200
    assert api.get(f"/api/tasks/{odd_task.id}").status_code == 200
    assert api.get("/api/tasks").status_code == 200


@pytest.mark.parametrize("odd_task", ODD_PAYLOADS[:1], indirect=True, ids=["surrogates"])
def test_it_shows_a_lone_surrogate_escaped_and_refuses_it_when_cloned(dash, settings, odd_task):
    page = dash.get(f"/tasks/new/?clone={odd_task.id}").content.decode()
    assert "\\ud800" in page
    # Sent back as shown, the clone is refused with a message.
    response = dash.post(
        "/tasks/new/",
        form_data(data='{"a": "\\ud800"}', clone_of=odd_task.id, submission="c" * 32),
    )
    assert response.status_code == 422
    assert "not valid Unicode" in field_error(response.content.decode(), "data")


@pytest.mark.parametrize(
    "odd_task", ODD_PAYLOADS, indirect=True, ids=["surrogates", "headers", "url"]
)
def test_the_executor_fails_odd_stored_data_for_good_and_says_why(odd_task):
    from tasks.executor import run_task

    odd_task.update(actions=[Task.due_at.set(datetime.now(UTC))])
    assert run_task({"task_id": odd_task.id})["result"] == "failed"
    stored = Task.get(odd_task.id)
    assert stored.status == "failed"
    assert stored.attempts == 1
    assert stored.error.startswith("invalid payload: ")
    stored.error.encode("utf-8")  # the reason itself can be shown


# --- cursors -------------------------------------------------------------------------------


def test_it_refuses_a_well_formed_cursor_it_did_not_sign(api, settings):
    import base64

    for _ in range(3):
        api.post("/api/tasks", task_body())
    page = api.get("/api/tasks", limit=1).json()
    assert page["nextCursor"]
    task = Task.get(page["items"][0]["id"])
    key = {
        "created_at": {"S": Task.created_at.serialize(task.created_at)},
        "id": {"S": task.id},
        "listing": {"S": "task"},
    }
    raw = json.dumps({"i": "listing-created_at-index", "k": key}).encode()
    forged = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = api.get("/api/tasks", cursor=forged)
    assert response.status_code == 400
    assert response.json() == {"detail": "invalid cursor"}
    # One signed under another SECRET_KEY (another deployment) is foreign.
    cursor = page["nextCursor"]
    settings.SECRET_KEY = "another-secret-key"
    response = api.get("/api/tasks", cursor=cursor)
    assert response.status_code == 400
    assert response.json() == {"detail": "invalid cursor"}


def test_a_tampered_cursor_is_refused_in_the_dashboard_too(dash):
    for _ in range(30):
        creation.task_create(
            action="webhook",
            payload={"url": "https://example.com/hook"},
            run_at=datetime.now(UTC) + timedelta(hours=1),
        )
    cursor = selectors.task_list(limit=25).next_cursor
    tampered = cursor[:-3] + ("aaa" if not cursor.endswith("aaa") else "bbb")
    response = dash.get("/", {"cursor": tampered})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert dash.get("/", {"cursor": cursor}).status_code == 200


# --- chunked request bodies ------------------------------------------------------------------


@pytest.fixture
def local_server(aws):
    """The dashboard and API served by werkzeug, as `make run` serves them."""
    from werkzeug.serving import make_server

    from scheduler_site.wsgi import application

    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join()


def exchange(port: int, request: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes; (status, headers, body) of the answer, read to the
    connection's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    if headers.get("transfer-encoding") == "chunked":
        decoded = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            if int(size, 16) == 0:
                break
            decoded += rest[: int(size, 16)]
            body = rest[int(size, 16) + 2 :]
        body = decoded
    return int(status_line.split()[1]), headers, body


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("extra", "status", "words"),
    [
        ("", 411, "send the body with a Content-Length"),
        ("Content-Length: 5\r\n", 400, "both Transfer-Encoding and Content-Length"),
        ("Content-Length: 100000\r\n", 400, "both Transfer-Encoding and Content-Length"),
    ],
    ids=["chunked", "chunked with a short Content-Length", "chunked with a long one"],
)
def test_it_refuses_a_chunked_body_with_a_clear_4xx(
    local_server, api_key, settings, path, extra, status, words
):
    body = json.dumps(task_body()).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n{extra}"
        "Connection: close\r\n\r\n"
    ).encode() + chunked(body)
    code, headers, answer = exchange(local_server, request)
    assert code == status
    assert headers["content-type"] == "application/json"
    assert words in json.loads(answer)["detail"]
    assert nothing_stored(settings)


def test_it_closes_the_connection_after_refusing_a_chunked_body(local_server, api_key):
    # What follows the refused body must not be read as a request of its own.
    smuggled = b"GET /api/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    request = (
        b"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n" + chunked(b"{}") + smuggled
    )
    code, _headers, answer = exchange(local_server, request)
    assert code == 411
    assert b"HTTP/1.1 200" not in answer


def test_it_refuses_a_chunked_form_post_in_plain_text(local_server):
    request = (
        b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n"
        + chunked(b"username=a&password=b")
    )
    code, headers, answer = exchange(local_server, request)
    assert code == 411
    assert headers["content-type"].startswith("text/plain")
    assert b"Content-Length" in answer


def test_it_reads_a_body_with_a_content_length_as_before(local_server, api_key, settings):
    body = json.dumps(task_body()).encode()
    request = (
        f"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    code, _headers, answer = exchange(local_server, request)
    assert code == 201, answer
    assert Task.get(json.loads(answer)["id"]).status == "scheduled"


def test_it_leaves_a_transfer_encoding_header_alone_on_lambda(api_key, aws):
    """API Gateway reassembles a chunked body and Zappa gives its length: a
    Transfer-Encoding header that reaches the app there is only a leftover."""
    from django.test import RequestFactory

    from scheduler_site.wsgi import application

    body = json.dumps(task_body()).encode()
    request = RequestFactory().post(
        "/api/tasks",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}", "Transfer-Encoding": "chunked"},
    )
    environ = {**request.environ, "lambda.context": object()}
    statuses = []
    application(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["201 Created"]
