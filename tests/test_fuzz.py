"""Property-based tests over the API and the New task form (Hypothesis): for
any request, never a 5xx; a task is stored (201) only if the executor can
send it exactly as stored; and a body the OpenAPI schema allows, within the
rules it states in words, is accepted.

In `make test` each property runs a fixed, derandomised set of examples
(well under a minute); `make fuzz` runs them long and random
(FUZZ_EXAMPLES, default 3000 each), keeping failures in .hypothesis/.
"""

from __future__ import annotations

import json
import os
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.actions import limits
from tasks.actions.webhook import WebhookAction, WebhookSpec
from tasks.actions.webhook_rules import CONNECTION_HEADERS, RESERVED_HEADERS
from tasks.models import Task

pytestmark = pytest.mark.fuzz

_COMMON = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,  # one moto account per test, shared by examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}
settings.register_profile("suite", max_examples=40, derandomize=True, database=None, **_COMMON)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")), **_COMMON
)
FUZZ = settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite")))


# --- what can be sent ------------------------------------------------------------------


def assert_sendable(task: Task) -> None:
    """The executor takes the stored payload as it is, and http.client puts
    its request line, headers and body together without complaint."""
    payload = task.payload
    spec = WebhookSpec.from_stored(payload)  # ValueError if the executor would refuse it
    assert spec.url == payload["url"], "the stored URL is not in its normal form"
    delivery = WebhookAction().prepare(task_id=task.id, payload=payload, attempt=1)
    try:
        delivery._stage()  # buffers the request line and headers; sends nothing
        assert json.loads(delivery.body) == payload.get("data")
    finally:
        delivery.close()


class Recorder:
    """Keeps the ids of the tasks the API said it made, to compare with the
    table: a refused request stores nothing."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def check(self, response) -> None:
        assert response.status_code < 500, response.content[:500]
        if response.status_code in (200, 201):
            self.stored(response.json()["id"])
        else:
            detail = response.json()["detail"]
            assert detail, "an error without a message"
            if isinstance(detail, list):
                assert all(e["msg"] for e in detail)

    def stored(self, task_id: str) -> None:
        assert_sendable(Task.get(task_id, consistent_read=True))
        self.ids.add(task_id)

    def assert_nothing_else_stored(self) -> None:
        assert {task.id for task in Task.scan()} == self.ids


# --- strategies ----------------------------------------------------------------------------

# Every code point, lone surrogates included (as a JSON escape can make them).
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=40)
# What a browser or an HTTP header can carry: valid Unicode.
form_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
nasty_chars = st.sampled_from(
    list("\x00\t\n\r\x0b\x0c\x7f\x85\u2028 \\@#?%/:[]<>\"'`{}|^~€ßς\u200dä漢😀\ud800\udfff")
)
nasty_text = st.text(st.one_of(nasty_chars, st.sampled_from(string.ascii_letters)), max_size=20)


def nested(depth: int, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70).flatmap(lambda n: st.sampled_from([n, -n])),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)
data_values = st.one_of(
    json_values,
    st.tuples(st.integers(limits.MAX_DEPTH - 2, 300), json_leaves).map(lambda t: nested(*t)),
)

hosts = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "EXAMPLE.com.",
            "bücher.example",
            "faß.de",
            "☃.net",
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "0x7f.1",
            "2130706433",
            "[::1]",
            "[fec0::1]",
            "[2002:a9fe:a9fe::1]",
            "[64:ff9b:1::a9fe:a9fe]",
            "[2001:0:4136:e378:8000:63bf:5601:5601]",
            "[::ffff:169.254.169.254]",
            "user@example.com",
            "@example.com",
            "exa mple.com",
        ]
    ),
    nasty_text,
)
urls = st.one_of(
    st.builds(
        "{}://{}{}/{}{}".format,
        st.sampled_from(["http", "https", "HTTPS", "ftp", "javascript"]),
        hosts,
        st.sampled_from(["", ":80", ":0", ":65536", ":x", ":"]),
        nasty_text,
        st.one_of(st.just(""), nasty_text.map("?{}".format), nasty_text.map("#{}".format)),
    ),
    any_text,
)
header_names = st.one_of(
    st.sampled_from(["X-Token", "Authorization", "Host", "X-Foo\n", "Host\n", "expect", "X A"]),
    st.text(st.sampled_from("!#$%&'*+-.^_`|~abcXYZ019"), min_size=1, max_size=8),
    nasty_text,
)
header_values = st.one_of(
    nasty_text,
    any_text,
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)
headers = st.dictionaries(header_names, header_values, max_size=4)


def run_at_strategy():
    soon = datetime.now(UTC) + timedelta(hours=1)
    iso = soon.isoformat()
    return st.one_of(
        st.just(iso.replace("+00:00", "Z")),
        st.just(iso),
        st.just(iso.replace("+00:00", "")),
        st.just(int(soon.timestamp())),
        st.just(str(int(soon.timestamp()))),
        st.floats(),
        st.integers(),
        any_text,
        st.none(),
    )


payloads = st.fixed_dictionaries(
    {"url": urls},
    optional={
        "data": data_values,
        "headers": st.one_of(headers, st.lists(st.text(max_size=5), max_size=2)),
        "method": st.one_of(st.sampled_from(["POST", "put", "GET", ""]), any_text),
        "extra": json_leaves,
    },
)


def bodies():
    return st.fixed_dictionaries(
        {"action": st.one_of(st.just("webhook"), any_text), "payload": payloads},
        optional={
            "runAt": run_at_strategy(),
            "maxAttempts": st.one_of(st.none(), st.integers(), st.booleans(), st.floats()),
            "extra": json_leaves,
        },
    )


# --- the properties --------------------------------------------------------------------------


@pytest.fixture
def recorder(aws, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    recorder = Recorder()
    yield recorder
    recorder.assert_nothing_else_stored()


@FUZZ
@given(body=bodies(), path=st.sampled_from(["/api/tasks", "/schedule-task"]))
def test_any_body_is_a_4xx_or_a_task_the_executor_can_send(api, recorder, body, path):
    recorder.check(api.post(path, body))


@FUZZ
@given(body=bodies())
def test_the_local_mode_too(api, recorder, settings, body):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    recorder.check(api.post("/api/tasks", body))


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.integers(1, 20_000).map(lambda n: "[" * n + "]" * n),
        st.integers(1, 6000).map(lambda n: '{"action": "webhook", "n": ' + "9" * n + "}"),
    ),
    key=st.one_of(
        st.none(), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
    ),
)
def test_any_bytes_are_a_4xx(client, api_key, recorder, raw, key):
    headers = {"Authorization": f"Bearer {api_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    response = client.post("/api/tasks", raw, content_type="application/json", headers=headers)
    recorder.check(response)


def from_schema(schema: dict, formats: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """Values a JSON schema allows, for the keywords the OpenAPI schema uses:
    what a client generated from it could send. (hypothesis-jsonschema does
    not work with this version of Hypothesis.)"""
    if "anyOf" in schema:
        common = {k: v for k, v in schema.items() if k != "anyOf"}
        return st.one_of([from_schema({**common, **s}, formats) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind is None:
        return json_values  # {}: any JSON
    if kind == "null":
        return st.none()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "string":
        if schema.get("format") in formats:
            return formats[schema["format"]]
        longest = schema.get("maxLength", 100)
        if "pattern" in schema:
            strings = st.from_regex(schema["pattern"], fullmatch=True)
            return strings.filter(lambda v: schema.get("minLength", 0) <= len(v) <= longest)
        return st.text(min_size=schema.get("minLength", 0), max_size=longest)
    assert kind == "object", schema
    properties = schema.get("properties", {})
    if properties:
        required = schema.get("required", [])
        strategies = {k: from_schema(v, formats) for k, v in properties.items()}
        return st.fixed_dictionaries(
            {k: v for k, v in strategies.items() if k in required},
            optional={k: v for k, v in strategies.items() if k not in required},
        )
    names = from_schema({"type": "string", **schema.get("propertyNames", {})}, formats)
    values = from_schema(schema.get("additionalProperties", {}), formats)
    return st.dictionaries(names, values, max_size=schema.get("maxProperties"))


def _schema_within_its_words(client) -> st.SearchStrategy:
    """Bodies the OpenAPI schema allows, with a runAt inside the window (what
    its description says) and URLs of the uri format."""
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]["TaskIn"]
    soon = st.integers(60, 360 * 86400).map(
        lambda s: (datetime.now(UTC) + timedelta(seconds=s)).isoformat()
    )
    uri = st.builds(
        "https://{}/{}".format,
        st.sampled_from(["example.com", "hooks.example.org", "xn--bcher-kva.example"]),
        # RFC 3986's unreserved and sub-delims, ":@/?": what "format: uri" allows
        st.text(
            st.sampled_from(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?"),
            max_size=20,
        ),
    )
    return from_schema(schema, {"date-time": soon, "uri": uri})


def _stated_rules_allow(body: dict) -> bool:
    """What the schema says only in words: no header the scheduler sets,
    each name once, data within the limits, and the size limit."""
    payload = body["payload"]
    names = [name.lower() for name in payload.get("headers", {})]
    if len(set(names)) != len(names) or set(names) & (RESERVED_HEADERS | CONNECTION_HEADERS):
        return False
    if limits.json_problem(payload.get("data"), allow_nan=True):
        return False
    return len(json.dumps(payload)) <= 65536


def test_a_body_the_schema_allows_is_accepted(api, client, recorder):
    strategy = _schema_within_its_words(client)

    @FUZZ
    @given(body=strategy)
    def check(body):
        response = api.post("/api/tasks", body)
        recorder.check(response)
        if _stated_rules_allow(body):
            assert response.status_code == 201, (body, response.content[:500])

    check()


@pytest.fixture
def dash(client, aws, settings, collected_static):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from tasks.services import access

    access.operator_create(username="alice", password="correct horse battery")
    login = {"username": "alice", "password": "correct horse battery"}
    assert client.post("/login/", login).status_code == 302
    return client


@FUZZ
@given(
    url=st.one_of(urls.filter(limits.is_unicode), form_text),
    header_lines=st.lists(
        st.tuples(header_names, header_values).map(": ".join).filter(limits.is_unicode),
        max_size=3,
    ).map("\n".join),
    data=st.one_of(
        form_text,
        data_values.map(json.dumps),
        st.integers(1, 12_000).map(lambda n: "[" * n + "]" * n),
        st.integers(1, 6000).map(lambda n: "9" * n),
    ),
    number=st.integers(0, 10**6),
)
def test_any_new_task_form_is_a_4xx_or_a_task_the_executor_can_send(
    dash, recorder, url, header_lines, data, number
):
    form = {
        "url": url.replace("\x00", ""),
        "method": "POST",
        "headers": header_lines.replace("\x00", ""),
        "data": data.replace("\x00", ""),
        "when": "in",
        "in_minutes": "10",
        "run_at": "",
        "timezone": "UTC",
        "max_attempts": "3",
        "submission": f"{number:032x}",
        "clone_of": "",
    }
    response = dash.post("/tasks/new/", form)
    assert response.status_code < 500
    if response.status_code == 302:
        recorder.stored(response["Location"].split("/")[2])
    else:
        assert response.status_code in (200, 400, 422)
