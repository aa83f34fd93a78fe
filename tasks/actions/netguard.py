"""Connect-time SSRF guard for outgoing webhook requests.

The host is resolved once, every resolved address is checked, and the socket
connects to an address that was checked: a second DNS answer (rebinding) is
never consulted. TLS still verifies the certificate against the host name.
The connections also hold the response's headers to the request's timeout.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import threading
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata endpoints, refused even when private networks are allowed.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
}


class ConnectError(OSError):
    """The connection could not be made."""


class BlockedAddressError(ConnectError):
    """The destination resolves to an address webhooks may not reach."""


def refusal_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not connect to this address, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if allow_private and (address.is_loopback or address.is_private):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def guarded_connection(
    host: str, port: int, timeout: float | None, *, allow_private: bool
) -> socket.socket:
    """A socket connected to a checked address of host (see the module doc)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectError(f"cannot resolve {host}: {exc}") from exc
    for *_, sockaddr in infos:
        reason = refusal_reason(ipaddress.ip_address(sockaddr[0]), allow_private=allow_private)
        if reason:
            raise BlockedAddressError(f"refused to connect to {host}: it resolves to {reason}")
    last_error: OSError | None = None
    for family, socktype, proto, _, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise ConnectError(f"failed to connect to {host}: {last_error}")


class _Guarded:
    """http.client's connections open their socket through
    `self._create_connection` (socket.create_connection, set in __init__):
    here, the guarded one."""

    allow_private = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = self._guarded_connection

    def _guarded_connection(self, address: Any, timeout: Any = None, source_address: Any = None):
        host, port = address
        return guarded_connection(host, port, timeout, allow_private=self.allow_private)


class _ResponseDeadline:
    """The response's headers must arrive within what is left of the request's
    timeout (the delivery sets `timeout` to that before getresponse). A socket
    timeout bounds each read, but a receiver sending a byte at a time restarts
    it with every byte; so a timer shuts the socket down at the deadline."""

    sock: socket.socket | None
    timeout: object

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        sock, timeout = self.sock, self.timeout
        if sock is None or not isinstance(timeout, int | float):
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            # The plain socket's shutdown, also under TLS: it wakes the reader.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            response = super().getresponse(*args, **kwargs)  # type: ignore[misc]
        except (OSError, HTTPException) as exc:
            if expired.is_set():
                raise TimeoutError("the response did not arrive in time") from exc
            raise
        finally:
            timer.cancel()
        if expired.is_set():
            # Cut off mid-headers, http.client takes the end of the stream for
            # the end of the headers: what it parsed cannot be trusted.
            response.close()
            raise TimeoutError("the response did not arrive in time")
        return response


class GuardedHTTPConnection(_ResponseDeadline, _Guarded, HTTPConnection):
    pass


class GuardedHTTPSConnection(_ResponseDeadline, _Guarded, HTTPSConnection):
    """TLS with the standard library's defaults: the certificate is verified
    against the system's CAs and the host name."""


@functools.cache
def connection_class(scheme: str, *, allow_private: bool) -> type:
    """The connection class for a URL scheme, with the guard set."""
    base = GuardedHTTPSConnection if scheme == "https" else GuardedHTTPConnection
    return type(base.__name__, (base,), {"allow_private": allow_private})
