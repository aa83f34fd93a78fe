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

# Cloud metadata endpoints, refused even when private networks are allowed:
# AWS (and Azure, GCP, DigitalOcean...), ECS task metadata, AWS over IPv6,
# Alibaba Cloud, Oracle Cloud.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("192.0.0.192"),
}

_WELL_KNOWN_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT
# RFC 6052 2.2: where an IPv4 address sits in an IPv6 address, by the length
# of the NAT64 prefix (byte ranges; byte 8 is always skipped).
_RFC6052_SLICES = {48: (6, 8, 9, 11), 56: (7, 8, 9, 12), 64: (9, 13, 0, 0), 96: (12, 16, 0, 0)}


class ConnectError(OSError):
    """The connection could not be made."""


class BlockedAddressError(ConnectError):
    """The destination resolves to an address webhooks may not reach."""


def refusal_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not connect to this address, or None if it may.

    An IPv6 address that carries an IPv4 address (IPv4-mapped, -compatible
    or -translated, 6to4, Teredo, NAT64, ISATAP) is refused if what it carries
    is, in every mode: 6to4, Teredo and NAT64 gateways deliver to it. Loopback
    and private addresses are allowed only with allow_private (local
    development); metadata, link-local, site-local, multicast and unspecified
    addresses never."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    carried = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else []
    # First what is refused in every mode (metadata says more than "a private
    # address"), then the address itself, then what it carries, in this mode.
    for kind, ipv4 in carried:
        if reason := refusal_reason(ipv4, allow_private=True):
            return f"{reason} ({ipv4}, carried in {kind} address)"
    if reason := _own_refusal_reason(address, allow_private=allow_private):
        return reason
    for kind, ipv4 in carried:
        if reason := refusal_reason(ipv4, allow_private=allow_private):
            return f"{reason} ({ipv4}, carried in {kind} address)"
    return None


def _own_refusal_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address (fec0::/10, deprecated)"
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


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, by transition mechanism.
    For the local-use NAT64 prefix, whose length the network chooses, every
    place RFC 6052 allows."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    packed = address.packed
    if address.sixtofour:
        found.append(("a 6to4", address.sixtofour))
    if address.teredo:
        server, client = address.teredo
        found += [("a Teredo", server), ("a Teredo", client)]
    if address in _WELL_KNOWN_NAT64:
        found.append(("a NAT64", ipaddress.IPv4Address(packed[12:])))
    if address in _LOCAL_NAT64:
        for a, b, c, d in _RFC6052_SLICES.values():
            # Only where the rest of the address is as RFC 6052 leaves it:
            # zero after the IPv4 address, and in byte 8.
            end = max(b, d)
            if packed[8] == 0 and not any(packed[end:]):
                carried = ipaddress.IPv4Address(packed[a:b] + packed[c:d])
                if not carried.is_unspecified:
                    found.append(("a NAT64", carried))
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1
        found.append(("an IPv4-compatible", ipaddress.IPv4Address(packed[12:])))
    if address in _IPV4_TRANSLATED:
        found.append(("an IPv4-translated", ipaddress.IPv4Address(packed[12:])))
    if packed[8:12] in (b"\x00\x00\x5e\xfe", b"\x02\x00\x5e\xfe"):
        found.append(("an ISATAP", ipaddress.IPv4Address(packed[12:])))
    return found


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
