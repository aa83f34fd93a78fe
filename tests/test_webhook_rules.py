"""The payload rules as plain functions (tasks.actions.limits, .webhook_rules,
.netguard): what the API, the dashboard and the executor all apply."""

from __future__ import annotations

import ipaddress
import json

import pytest

from tasks.actions import TransportError
from tasks.actions.limits import MAX_DEPTH, json_problem
from tasks.actions.netguard import refusal_reason
from tasks.actions.webhook import WebhookAction, WebhookSpec
from tasks.actions.webhook_rules import headers_problem, normalise_url


def nested(depth: int, leaf=None, *, kind: str = "list"):
    """A value `depth` arrays (or objects) deep, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


# --- JSON limits ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["list", "object"])
def test_it_accepts_json_nested_up_to_the_limit(kind):
    assert json_problem(nested(MAX_DEPTH, 1, kind=kind)) is None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 256, 10_000, 100_000])
@pytest.mark.parametrize("kind", ["list", "object"])
def test_it_refuses_json_nested_past_the_limit_at_any_depth(kind, depth):
    problem = json_problem(nested(depth, kind=kind))
    assert problem == f"data is nested more than {MAX_DEPTH} levels deep"


BAD_JSON = [
    ({"a": "\ud800"}, "data.a is not valid Unicode"),
    ({"a": ["ok", "x\udfff"]}, "data.a[1] is not valid Unicode"),
    ({"\udc00": 1}, "key at data is not valid Unicode"),
    ([{"b": {"\ud83d": 1}}], "key at data[0].b is not valid Unicode"),
    ("\ud800", "string at data is not valid Unicode"),
    ({"n": 2**63}, "integer at data.n is out of range"),
    ({"n": -(2**63) - 1}, "integer at data.n is out of range"),
    ({"n": 10**5000}, "integer at data.n is out of range"),
    ({"k" * 257: 1}, "has 257 characters; the limit is 256"),
    ({"s": "x" * 65537}, "has 65537 characters; the limit is 65536"),
    ({"n": float("nan")}, "NaN or infinite"),
    ({"n": float("inf")}, "NaN or infinite"),
    ({"t": (1, 2)}, "not JSON (tuple)"),
    ({"s": {1, 2}}, "not JSON (set)"),
    ({1: "x"}, "key at data is not a string"),
    ({"odd key \ud800": {"x": "\ud800"}}, "key at data is not valid Unicode"),
]


@pytest.mark.parametrize(("value", "words"), BAD_JSON, ids=[w for _, w in BAD_JSON])
def test_it_refuses_json_that_cannot_be_sent_and_says_where(value, words):
    problem = json_problem(value)
    assert problem is not None and words in problem
    problem.encode("utf-8")  # the message itself can be shown and sent


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"message": "Hello World", "n": [1, 2.5, True, None]},
        {"emoji": "😀", "cjk": "漢字", "nul": "a\x00b", "rtl": "\u202e"},
        {"n": 2**63 - 1, "m": -(2**63), "f": 1e308},
        {"k" * 256: "x" * 65536},
        [],
        "plain",
    ],
)
def test_it_accepts_ordinary_json(value):
    assert json_problem(value) is None


def test_it_leaves_nan_to_the_caller_when_asked():
    assert json_problem({"n": float("nan")}, allow_nan=True) is None


def test_it_names_an_odd_key_escaped_and_short():
    problem = json_problem({"a b" + "x" * 100: "\ud800"})
    assert problem.startswith("a string at data.'a bxxx")
    assert len(problem) < 150


# --- URLs ------------------------------------------------------------------------------

NORMALISED = [
    ("https://example.com/hook", "https://example.com/hook"),
    ("HTTPS://Example.COM/Hook", "https://example.com/Hook"),
    ("  https://example.com/a  ", "https://example.com/a"),
    ("https://example.com/a b", "https://example.com/a%20b"),
    ("https://example.com/straße?q=ä ö#frag ment", "https://example.com/stra%C3%9Fe?q=%C3%A4%20%C3%B6#frag%20ment"),
    ("https://example.com/%C3%A4?x=%20", "https://example.com/%C3%A4?x=%20"),
    ("https://example.com/a<b>\"{c}|^`", "https://example.com/a%3Cb%3E%22%7Bc%7D%7C%5E%60"),
    ("https://example.com/p?q=a\\b", "https://example.com/p?q=a%5Cb"),
    ("https://bücher.example/", "https://xn--bcher-kva.example/"),
    ("https://BÜCHER.example/", "https://xn--bcher-kva.example/"),
    ("https://☃.net/", "https://xn--n3h.net/"),
    ("https://例え.テスト/パス", "https://xn--r8jz45g.xn--zckzah/%E3%83%91%E3%82%B9"),
    ("https://example.com:0443/", "https://example.com:443/"),
    ("https://example.com:/", "https://example.com/"),
    ("https://example.com", "https://example.com"),
    ("https://example.com/?", "https://example.com/?"),
    ("https://example.com./x", "https://example.com./x"),
    ("https://[2606:4700:4700:0::1111]/", "https://[2606:4700:4700::1111]/"),
    ("https://8.8.8.8/", "https://8.8.8.8/"),
    ("https://my_host.example/", "https://my_host.example/"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "normal"), NORMALISED, ids=[u for u, _ in NORMALISED])
def test_it_normalises_a_url_that_has_one_obvious_encoding(url, normal):
    assert normalise_url(url, allow_private=False) == normal
    assert normalise_url(normal, allow_private=False) == normal  # idempotent


REFUSED_URLS = [
    ("https://example.com/a\nb", "control characters"),
    ("https://example.com/a\tb", "control characters"),
    ("https://example.com/a\x00", "control characters"),
    ("https://example.com/a\x7f", "control characters"),
    ("https://example.com/a\x85", "control characters"),
    ("https://example.com/\ud800", "not valid Unicode"),
    ("https://exa\ud800mple.com/", "not valid Unicode"),
    ("https://example.com\\@evil.com/", "backslash"),
    ("https://example.com/a\\b", "backslash"),
    ("http:example.com/", "http://"),
    ("ftp://example.com/", "http://"),
    ("javascript://example.com/%0aalert(1)", "http://"),
    ("https://@example.com/", "credentials"),
    ("https://user@example.com/", "credentials"),
    ("https://exa mple.com/", "not a valid host name"),
    ("https://exa%6dple.com/", "not a valid host name"),
    ("https://a..b/", "not a valid host name"),
    ("https://" + "a" * 64 + ".com/", "not a valid"),
    ("https://faß.de/", "xn-- form"),
    ("https://example.com:0/", "invalid port"),
    ("https://example.com:65536/", "invalid port"),
    ("https://example.com:8o/", "invalid port"),
    ("http://[::1/", "IPv6"),
    ("http://[zzzz]/", "IPv6"),
    ("http://[fd00::1%25eth0]/", "zone"),
    ("http://127.1/", "dotted-decimal"),
    ("http://0x7f.0.0.1/", "dotted-decimal"),
    ("http://2130706433/", "dotted-decimal"),
    ("http://017700000001/", "dotted-decimal"),
    ("http://127.0.0.1./", "dotted-decimal"),
    ("http://010.0.0.1/", "dotted-decimal"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[2002:a9fe:a9fe::1]/", "address"),
    ("http://[64:ff9b:1::a9fe:a9fe]/", "address"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("https://example.com/" + "é" * 400, "once encoded; the limit is 2048"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("url", "words"), REFUSED_URLS, ids=[repr(u)[:60] for u, _ in REFUSED_URLS]
)
def test_it_refuses_a_url_that_cannot_be_sent_as_given(url, words):
    with pytest.raises(ValueError) as refused:
        normalise_url(url, allow_private=False)
    assert words in str(refused.value)
    str(refused.value).encode("utf-8")


# --- headers ---------------------------------------------------------------------------

REFUSED_HEADERS = [
    ({"X-Foo\n": "v"}, "invalid header name"),
    ({"Host\n": "v"}, "invalid header name"),
    ({"X-Foo\r\n": "v"}, "invalid header name"),
    ({"": "v"}, "invalid header name"),
    ({"X Foo": "v"}, "invalid header name"),
    ({"X:Foo": "v"}, "invalid header name"),
    ({"X-Föö": "v"}, "invalid header name"),
    ({"X-\ud800": "v"}, "invalid header name"),
    ({"X" * 65: "v"}, "invalid header name"),
    ({"X-A": "a\x00b"}, "control character"),
    ({"X-A": "a\x0bb"}, "control character"),
    ({"X-A": "a\x0cb"}, "control character"),
    ({"X-A": "a\x7fb"}, "control character"),
    ({"X-A": "a\rb"}, "control character"),
    ({"X-A": "a\nb"}, "control character"),
    ({"X-A": "a\x85b"}, "control character"),
    ({"X-A": "10 €"}, "printable ASCII"),
    ({"X-A": "café"}, "printable ASCII"),
    ({"X-A": "\ud800"}, "printable ASCII"),
    ({"X-A": " padded"}, "whitespace"),
    ({"X-A": "padded\t"}, "whitespace"),
    ({"X-A": "v" * 4097}, "longer than 4096"),
    ({"X-A": "1", "x-a": "2"}, "given twice"),
    ({"Expect": "100-continue"}, "about the connection"),
    ({"Upgrade": "h2c"}, "about the connection"),
    ({"TE": "trailers"}, "about the connection"),
    ({"HOST": "evil.example"}, "set by the scheduler"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "words"), REFUSED_HEADERS, ids=[repr(h)[:40] for h, _ in REFUSED_HEADERS]
)
def test_it_refuses_headers_that_break_rfc_9110(headers, words):
    problem = headers_problem(headers)
    assert problem is not None and words in problem
    problem.encode("utf-8")


def test_it_accepts_rfc_9110_headers_as_given():
    headers = {
        "X-Token": "abc.DEF_123~!#$%&'*+-^`|",
        "Authorization": "Bearer a b\tc",
        "X-Empty": "",
        "x-json": '{"a": [1, 2]}',
        "!#$%&'*+-.^_`|~": "ok",
    }
    assert headers_problem(headers) is None


# --- addresses ---------------------------------------------------------------------------

# Refused whatever the mode: what they carry or are is never a webhook's target.
ALWAYS_REFUSED = [
    ("fec0::1", "site-local"),
    ("feff::1", "site-local"),
    ("2002:a9fe:a9fe::1", "metadata"),
    ("2002:a9fe:a9fe:1234:5678::9", "metadata"),
    ("2002:a9fe:1::1", "link-local"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "metadata"),
    ("64:ff9b::a9fe:a9fe", "address"),
    ("64:ff9b:1::a9fe:a9fe", "metadata"),
    ("64:ff9b:1:a9fe:a9:fe00::", "metadata"),
    ("64:ff9b:1:a9:fe:a9fe::", "metadata"),
    ("64:ff9b:1:0:a9:fea9:fe00::", "metadata"),
    ("::a9fe:a9fe", "metadata"),
    ("::ffff:0:a9fe:a9fe", "metadata"),
    ("2001:db8::5efe:a9fe:a9fe", "metadata"),
    ("2001:db8::200:5efe:a9fe:a9fe", "metadata"),
    ("100.100.100.200", "metadata"),
    ("192.0.0.192", "metadata"),
    ("fd00:ec2::254", "metadata"),
]


@pytest.mark.parametrize("allow_private", [False, True], ids=["strict", "local mode"])
@pytest.mark.parametrize(("address", "kind"), ALWAYS_REFUSED, ids=[a for a, _ in ALWAYS_REFUSED])
def test_it_refuses_addresses_carrying_metadata_in_every_mode(address, kind, allow_private):
    reason = refusal_reason(ipaddress.ip_address(address), allow_private=allow_private)
    assert reason is not None and kind in reason
    url = f"http://[{address}]/" if ":" in address else f"http://{address}/"
    with pytest.raises(ValueError):
        normalise_url(url, allow_private=allow_private)


@pytest.mark.parametrize(
    "address", ["2002:7f00:1::1", "64:ff9b:1::a00:1", "2001:0:4136:e378:8000:63bf:80ff:fffe"]
)
def test_it_refuses_transition_addresses_carrying_private_ones_unless_allowed(address):
    # 2001:0:... carries 127.0.0.1 as the Teredo client.
    assert refusal_reason(ipaddress.ip_address(address), allow_private=False)
    assert refusal_reason(ipaddress.ip_address(address), allow_private=True) is None


# --- the executor's check of a stored payload is the API's -------------------------------

STORED = [
    {"url": "https://example.com/a b"},
    {"url": "https://bücher.example/straße"},
    {"url": "https://faß.de/"},
    {"url": "https://example.com/a\nb"},
    {"url": "http://[fec0::1]/"},
    {"url": "http://[2002:a9fe:a9fe::1]/"},
    {"url": "http://0x7f.0.0.1/"},
    {"url": "https://example.com/", "headers": {"X-Foo\n": "v"}},
    {"url": "https://example.com/", "headers": {"X-A": "a\x00b"}},
    {"url": "https://example.com/", "headers": {"X-A": "10 €"}},
    {"url": "https://example.com/", "headers": {"X-A": "1", "x-a": "2"}},
    {"url": "https://example.com/", "data": {"a": "\ud800"}},
    {"url": "https://example.com/", "data": {"\udc00": 1}},
    {"url": "https://example.com/", "data": nested(MAX_DEPTH + 1)},
    {"url": "https://example.com/", "data": nested(5000)},
    {"url": "https://example.com/", "data": {"n": 10**30}},
    {"url": "https://example.com/", "data": {"n": 2**63 - 1}},
    {"url": "https://example.com/", "data": nested(MAX_DEPTH)},
]


@pytest.mark.parametrize("payload", STORED, ids=[repr(p)[:70] for p in STORED])
def test_the_executor_accepts_exactly_what_the_service_stores(aws, settings, payload):
    """Whatever the service accepts, the executor sends as stored; whatever
    it refuses, the executor refuses too, for good."""
    from datetime import UTC, datetime

    from tasks.errors import Invalid
    from tasks.services import creation

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    try:
        stored, _, _ = creation.task_validate(
            action="webhook", payload=payload, run_at=datetime.now(UTC), max_attempts=None
        )
    except Invalid:
        stored = None
    try:
        WebhookSpec.from_stored(payload)
        executor_accepts = True
    except ValueError:
        executor_accepts = False
    assert executor_accepts == (stored is not None)
    if stored is not None:
        # The stored form is a fixed point, and can be put on the wire.
        assert WebhookSpec.from_stored(stored).url == stored["url"]
        delivery = WebhookAction().prepare(task_id="cd" * 16, payload=stored, attempt=1)
        delivery._stage()  # request line and headers, buffered: http.client's own checks
        json.loads(delivery.body)
        delivery.close()
    else:
        with pytest.raises(TransportError) as refused:
            WebhookAction().prepare(task_id="cd" * 16, payload=payload, attempt=1)
        assert refused.value.permanent
