"""The webhook action's SSRF guard.

No packet may leave for a refused address: socket.getaddrinfo is replaced
to make a host name resolve where a test needs it, and socket.connect is
watched to prove the guard refused before connecting.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from tasks.actions import TransportError
from tasks.actions.netguard import BlockedAddressError, connection_class, refusal_reason
from tasks.actions.webhook import WebhookAction
from tasks.executor import run_task
from tasks.models import LISTING_ALL, Task
from tasks.services import creation

REAL_GETADDRINFO = socket.getaddrinfo


def _info(address: str, port: int) -> tuple:
    if ipaddress.ip_address(address).version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


class FakeDns:
    """Host names resolving where a test says: answers["name"] is a list of
    answers, one per lookup (the last one repeats). Records every lookup;
    other names resolve as usual."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def __setitem__(self, host: str, addresses: list[str]) -> None:
        self.answers[host] = [addresses]

    def getaddrinfo(self, host, port, *args, **kwargs):
        self.lookups.append(host)
        if host not in self.answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        answers = self.answers[host]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [_info(address, port) for address in addresses]


@pytest.fixture
def dns(monkeypatch):
    fake = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


@pytest.fixture
def connects(monkeypatch):
    """Every address a socket connects to; a refused one must never appear."""
    seen: list[tuple] = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        seen.append(address)
        host = address[0]
        if not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            raise AssertionError(f"a test tried to connect to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def stored_task(url: str, *, max_attempts: int = 3) -> Task:
    """A task stored directly, as one created while its URL was allowed
    (e.g. with private networks allowed), due now."""
    now = datetime.now(UTC)
    task = Task(
        id="ab" * 16,
        action="webhook",
        payload={"url": url, "data": {"x": 1}, "method": "POST", "headers": {}},
        run_at=now,
        due_at=now,
        status="scheduled",
        attempts=0,
        max_attempts=max_attempts,
        schedule_name="ab" * 16 + "-1",
        schedule_seq=1,
        listing=LISTING_ALL,
        created_at=now,
        updated_at=now,
    )
    task.save()
    return task


def send(url: str) -> None:
    WebhookAction().run(task_id="cd" * 16, payload={"url": url, "data": {}}, attempt=1)


# --- refused at connect time -----------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("::ffff:10.0.0.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("100.64.0.1", "reserved"),
    ("240.0.0.1", "private"),
    ("255.255.255.255", "private"),
    ("198.18.0.1", "private"),
    # IPv6 forms that carry an IPv4 address: NAT64 (refused whole), 6to4, Teredo.
    ("64:ff9b::a00:1", "reserved"),
    ("2002:a00:1::", "private"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),
]


@pytest.mark.parametrize(("address", "kind"), REFUSED, ids=[a for a, _ in REFUSED])
def test_it_refuses_a_host_that_resolves_to_a_refused_address_without_connecting(
    settings, dns, connects, address, kind
):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    dns["hooks.example.test"] = [address]
    with pytest.raises(TransportError) as raised:
        send("http://hooks.example.test/hook")
    assert raised.value.permanent
    assert raised.value.message.startswith("refused to connect to hooks.example.test")
    assert kind in raised.value.message
    assert connects == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://169.254.169.254/latest/",
        "http://10.0.0.1/",
        "http://[::1]:9/",
    ],
)
def test_its_guard_refuses_ip_literals_too(settings, connects, url):
    # The create API refuses these already (see test_validation); the guard
    # below it refuses them as well, on its own.
    parts = urlsplit(url)
    conn = connection_class(parts.scheme, allow_private=False)(parts.hostname, parts.port)
    with pytest.raises(BlockedAddressError, match="refused to connect"):
        conn.connect()
    assert connects == []


def test_it_fails_a_stored_task_aimed_at_a_refused_address_for_good(aws, settings, connects):
    # e.g. created while private networks were allowed, run after they no longer are.
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    task = stored_task("http://10.0.0.1/hook")
    assert run_task({"task_id": task.id})["result"] == "failed"
    failed = Task.get(task.id)
    assert failed.attempts == 1
    assert failed.error == (
        "invalid payload: url points to a private address, which webhooks may not reach"
    )
    assert failed.attempt_history[0].outcome == "failure"
    assert connects == []


def test_it_refuses_a_name_that_resolves_to_loopback(aws, receiver, settings, connects):
    port = receiver.port
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    receiver.expect_request("/hook").respond_with_data("ok")
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": f"http://localhost:{port}/hook"},
        run_at=datetime.now(UTC),
    )
    assert run_task({"task_id": task.id})["result"] == "failed"
    failed = Task.get(task.id)
    assert failed.error == "refused to connect to localhost: it resolves to a loopback address"
    assert failed.attempts == 1
    assert receiver.log == []
    assert connects == []


def test_it_refuses_a_name_with_any_refused_address_dns_rebinding(aws, settings, dns, connects):
    # One public answer and one internal: refused, as the connection could
    # go to either.
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    dns["rebind.example.test"] = ["93.184.216.34", "127.0.0.1"]
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "http://rebind.example.test/hook"},
        run_at=datetime.now(UTC),
    )
    assert run_task({"task_id": task.id})["result"] == "failed"
    assert "loopback" in Task.get(task.id).error
    assert connects == []


def test_it_connects_to_the_address_it_checked_without_resolving_again(
    aws, receiver, settings, dns, connects
):
    # A rebinding server answers the first lookup with an allowed address and
    # every later one with the metadata address. The guard resolves once and
    # connects to what it checked.
    receiver.expect_request("/hook").respond_with_data("ok")
    dns.answers["rebind.example.test"] = [["127.0.0.1"], ["169.254.169.254"]]
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": f"http://rebind.example.test:{receiver.port}/hook"},
        run_at=datetime.now(UTC),
    )
    assert run_task({"task_id": task.id})["result"] == "completed"
    assert dns.lookups.count("rebind.example.test") == 1
    assert connects == [("127.0.0.1", receiver.port)]
    [(request, _response)] = receiver.log
    assert request.headers["Host"] == f"rebind.example.test:{receiver.port}"


def test_it_allows_loopback_and_private_only_when_configured(aws, receiver, settings, connects):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = stored_task(receiver.url_for("/hook"))
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    assert run_task({"task_id": task.id})["result"] == "completed"
    assert connects == [("127.0.0.1", receiver.port)]


def test_it_refuses_metadata_even_when_private_networks_are_allowed(settings, dns, connects):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    for address in ("169.254.169.254", "fd00:ec2::254", "169.254.10.10"):
        dns["meta.example.test"] = [address]
        with pytest.raises(TransportError, match="refused to connect"):
            send("http://meta.example.test/")
    assert connects == []


def test_it_ignores_proxies_from_the_environment(aws, receiver, settings, monkeypatch):
    # A proxy would connect on the webhook's behalf, past the guard.
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        proxy.setblocking(False)
        proxy_url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy_url)
        receiver.expect_request("/hook").respond_with_data("ok")
        task = stored_task(receiver.url_for("/hook"))
        assert run_task({"task_id": task.id})["result"] == "completed"
        with pytest.raises(BlockingIOError):
            proxy.accept()
    assert len(receiver.log) == 1


# --- the address rules ------------------------------------------------------------------


@pytest.mark.parametrize(("address", "kind"), REFUSED, ids=[a for a, _ in REFUSED])
def test_its_rules_refuse_internal_addresses(address, kind):
    reason = refusal_reason(ipaddress.ip_address(address), allow_private=False)
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450::1"]
)
def test_its_rules_allow_public_addresses(address):
    assert refusal_reason(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.1", True),
        ("192.168.1.1", True),
        ("fc00::1", True),
        ("169.254.169.254", False),
        ("169.254.1.1", False),
        ("fe80::1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
    ],
)
def test_its_private_setting_opens_loopback_and_private_only(address, allowed):
    reason = refusal_reason(ipaddress.ip_address(address), allow_private=True)
    assert (reason is None) is allowed


def test_it_guards_the_connection_opened_early_for_a_delivery_that_waits(
    aws, settings, dns, connects
):
    # A delivery a little before the task is due opens its connection while it
    # waits: through the same guard.
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    dns["early.example.test"] = ["10.0.0.1"]
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "http://early.example.test/hook"},
        run_at=datetime.now(UTC) + timedelta(seconds=2),
    )
    assert run_task({"task_id": task.id})["result"] == "failed"
    assert "private address" in Task.get(task.id).error
    assert connects == []


def test_it_delivers_on_the_connection_opened_early_without_resolving_again(
    aws, receiver, dns, connects
):
    receiver.expect_request("/hook").respond_with_data("ok")
    dns.answers["early.example.test"] = [["127.0.0.1"], ["169.254.169.254"]]
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": f"http://early.example.test:{receiver.port}/hook"},
        run_at=datetime.now(UTC) + timedelta(seconds=2),
    )
    assert run_task({"task_id": task.id})["result"] == "completed"
    assert dns.lookups.count("early.example.test") == 1
    assert connects == [("127.0.0.1", receiver.port)]
    assert len(receiver.log) == 1


# --- the executor's checks of a stored payload are the API's -----------------------------

STORED_PAYLOADS = [
    {"url": "https://example.com/hook", "data": {"a": 1}},
    {"url": "https://example.com/hook", "method": "put", "headers": {"X-Token": "t"}},
    {"url": "ftp://example.com/hook"},
    {"url": "https://user:pw@example.com/hook"},
    {"url": "https://example.com:99999/hook"},
    {"url": "http://[::1/hook"},
    {"url": "http://10.0.0.1/hook"},
    {"url": "http://169.254.169.254/latest/meta-data/"},
    {"url": "https://example.com/" + "a" * 2100},
    {"url": "https://example.com/hook", "method": "GET"},
    {"url": "https://example.com/hook", "headers": {"webhook-signature": "forged"}},
    {"url": "https://example.com/hook", "headers": {"bad name": "v"}},
    {"url": "https://example.com/hook", "headers": {"X-A": "v\r\nInjected: 1"}},
    {"url": "https://example.com/hook", "headers": {f"X-{i}": "v" for i in range(21)}},
    {"url": "https://example.com/hook", "extra": True},
    {"data": {}},
]


@pytest.mark.parametrize("payload", STORED_PAYLOADS)
def test_the_executor_refuses_exactly_what_the_api_refuses(settings, payload):
    from pydantic import ValidationError

    from tasks.actions.webhook_payload import WebhookPayload

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    try:
        WebhookPayload.model_validate(payload)
        api_accepts = True
    except ValidationError:
        api_accepts = False
    try:
        WebhookAction().prepare(task_id="cd" * 16, payload=payload, attempt=1).close()
        executor_accepts = True
    except TransportError as exc:
        assert exc.permanent and exc.message.startswith("invalid payload: ")
        executor_accepts = False
    assert executor_accepts == api_accepts


def test_the_executor_imports_no_pydantic():
    # pydantic is a sixth of the executor's cold start; only validation needs
    # it. (The executor function loads Django's settings, not its apps.)
    import subprocess
    import sys

    code = (
        "import sys; from django.conf import settings; settings.WEBHOOK_TIMEOUT_SECONDS;"
        "import tasks.executor, tasks.services.running, tasks.actions.webhook;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'ninja'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- HTTPS: the certificate is verified, against the host name -------------------------


@pytest.fixture
def tls_receiver(settings, monkeypatch, tmp_path):
    """An HTTPS receiver on 127.0.0.1 whose certificate, for `localhost`, is
    issued by a test CA. trust(ca) puts a CA in the standard library's default
    trust store (SSL_CERT_FILE, as one would for a private CA in production)."""
    import ssl

    import trustme
    from pytest_httpserver import HTTPServer

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True  # localhost is loopback
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_context)

    def trust(authority: trustme.CA) -> None:
        bundle = tmp_path / "ca.pem"
        bundle.write_bytes(authority.cert_pem.bytes())
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    server.trust = trust
    server.ca = ca
    server.start()
    yield server
    server.clear()
    server.stop()


def test_it_delivers_over_https_to_a_certificate_it_trusts(tls_receiver):
    tls_receiver.trust(tls_receiver.ca)
    tls_receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    send(f"https://localhost:{tls_receiver.port}/hook")
    [(request, _response)] = tls_receiver.log
    assert request.headers["webhook-id"] == "cd" * 16
    assert request.headers["webhook-signature"].startswith("v1,")


def test_it_refuses_a_certificate_it_does_not_trust(tls_receiver):
    import trustme

    tls_receiver.trust(trustme.CA())  # some other CA
    tls_receiver.expect_request("/hook").respond_with_data("ok")
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        send(f"https://localhost:{tls_receiver.port}/hook")
    assert tls_receiver.log == []


def test_it_checks_the_certificate_against_the_host_name_not_the_address(tls_receiver, dns):
    # The guard connects to the checked address; TLS still verifies the name
    # in the URL, which the certificate (for localhost) does not cover.
    tls_receiver.trust(tls_receiver.ca)
    dns["hooks.example.test"] = ["127.0.0.1"]
    tls_receiver.expect_request("/hook").respond_with_data("ok")
    with pytest.raises(TransportError, match="Hostname mismatch|doesn't match"):
        send(f"https://hooks.example.test:{tls_receiver.port}/hook")
    assert tls_receiver.log == []
