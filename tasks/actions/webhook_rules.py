"""The rules a webhook's URL and headers follow, as plain functions: the API
and the dashboard apply them to a new task (tasks.actions.webhook_payload),
the executor to a stored one (WebhookSpec.from_stored). No pydantic here.

URLs are normalised where there is one obvious way to send them, and refused
where there is not (see normalise_url). Headers are never changed: a header
is often a secret or a signature, so one that cannot be sent exactly as given
is refused.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

from tasks.actions.limits import is_unicode
from tasks.actions.netguard import refusal_reason

MAX_URL_CHARS = 2048
MAX_HEADERS = 20
MAX_HEADER_NAME_CHARS = 64
MAX_HEADER_VALUE_CHARS = 4096

# RFC 9110 5.1: a field name is a token. Matched whole (fullmatch): `$`
# would let a final newline through.
TOKEN_PATTERN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_TOKEN = re.compile(TOKEN_PATTERN)
# RFC 9110 5.5: field-vchar [ *( SP / HTAB / field-vchar ) field-vchar ], with
# field-vchar limited to visible ASCII (obs-text, bytes 0x80-0xFF, is obsolete
# and read differently by different receivers). Empty is allowed.
FIELD_VALUE_PATTERN = r"(?:[\x21-\x7e](?:[\x20\x09\x21-\x7e]*[\x21-\x7e])?)?"
_FIELD_VALUE = re.compile(FIELD_VALUE_PATTERN)

# Set by the scheduler itself; a task may not override them.
RESERVED_HEADERS = {
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}
# About the connection, not the request (hop-by-hop, or changing how the
# exchange goes): the scheduler's HTTP client manages those.
CONNECTION_HEADERS = {"keep-alive", "te", "trailer", "upgrade", "proxy-connection", "expect"}

# Percent-encoded in a path, a query or a fragment: everything but RFC 3986's
# unreserved and sub-delims, ":", "@", "/" (and "?" after the path), and "%"
# (taken to start an escape the sender already made).
_PATH_SAFE = "/%:@!$&'()*+,;="
_QUERY_SAFE = _PATH_SAFE + "?"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# Mapped differently by IDNA 2003 (Python's codec) and IDNA 2008 / UTS 46
# (browsers): "faß.de" is fass.de to one and xn--fa-hia.de to the other.
_IDNA_DEVIATIONS = {"\u00df", "\u03c2", "\u200c", "\u200d"}


def normalise_url(url: str, *, allow_private: bool | None = None) -> str:
    """The URL as it will be stored and sent, or ValueError saying why not.

    Normalised: the scheme and the host in lower case, an internationalised
    host in its IDNA (xn--) form, spaces, non-ASCII and the characters RFC 3986
    does not allow in a path, query or fragment percent-encoded (UTF-8), the
    port without leading zeros, surrounding spaces dropped. Refused: control
    characters (tabs, newlines) anywhere, a backslash before the query,
    credentials, a host that is not a DNS name or an IP address (an IPv6
    zone id included), an IPv4
    address not in dotted-decimal form (0x7f.1, 2130706433), an IP literal in
    a refused range, and more than MAX_URL_CHARS once encoded. Normalising a
    normalised URL gives it back unchanged. allow_private defaults to the
    WEBHOOK_ALLOW_PRIVATE_NETWORKS setting."""
    if allow_private is None:
        from django.conf import settings

        allow_private = settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS
    if not is_unicode(url):
        raise ValueError("url is not valid Unicode (it has a lone surrogate)")
    url = url.strip(" ")
    if _CONTROL.search(url):
        raise ValueError("url must not contain control characters (tabs, line breaks)")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [IPv6 literal
        raise ValueError(f"url is not valid: {exc}") from None
    if parts.scheme not in ("http", "https") or not url.lower().startswith(parts.scheme + "://"):
        raise ValueError("url must start with http:// or https://")
    if "\\" in re.split(r"[?#]", url, maxsplit=1)[0]:
        raise ValueError("url must not contain a backslash (browsers read it as /)")
    if "@" in parts.netloc:
        raise ValueError("url must not carry credentials; use headers")
    host = _host(parts.netloc, parts.hostname, allow_private=allow_private)
    try:
        port = parts.port  # raises for a port out of range or not a number
    except ValueError:
        raise ValueError("url has an invalid port") from None
    if port == 0:
        raise ValueError("url has an invalid port")
    normal = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    normal += quote(parts.path, safe=_PATH_SAFE)
    if parts.query or url.split("#", 1)[0].endswith("?"):
        normal += "?" + quote(parts.query, safe=_QUERY_SAFE)
    if parts.fragment:
        normal += "#" + quote(parts.fragment, safe=_QUERY_SAFE)
    if len(normal) > MAX_URL_CHARS:
        raise ValueError(
            f"url is {len(normal)} characters once encoded; the limit is {MAX_URL_CHARS}"
        )
    return normal


def _host(netloc: str, hostname: str | None, *, allow_private: bool) -> str:
    """The host of a URL in its normal form (as it goes into the URL: an IPv6
    address in brackets); ValueError unless it may be sent to."""
    if not hostname:
        raise ValueError("url must have a host")
    if netloc.startswith("["):
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError:
            raise ValueError("url has an invalid IPv6 address") from None
        if address.scope_id:  # fe80::1%25eth0: names an interface of the sender
            raise ValueError("url must not name an IPv6 zone (%25...)")
        _check_address(address, allow_private=allow_private)
        return f"[{address.compressed}]"
    if not hostname.isascii():
        if _IDNA_DEVIATIONS & set(hostname):
            raise ValueError(
                "url host has ß, ς or a joiner, which IDNA 2003 and 2008 map differently; "
                "write the host in its xn-- form"
            )
        try:
            hostname = hostname.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise ValueError("url host is not a valid internationalised domain name") from None
    labels = hostname.removesuffix(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # Resolvers read a numeric last label as IPv4 (inet_aton): 127.1,
        # 0x7f.0.0.1 and 2130706433 all reach 127.0.0.1. Only the usual form.
        try:
            address = ipaddress.IPv4Address(hostname)
        except ValueError:
            raise ValueError(
                "url host looks like an IPv4 address but is not in dotted-decimal form (a.b.c.d)"
            ) from None
        _check_address(address, allow_private=allow_private)
        return hostname
    if len(hostname) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("url host is not a valid host name")
    return hostname


def _check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, **rules) -> None:
    if reason := refusal_reason(address, **rules):
        raise ValueError(f"url points to {reason}, which webhooks may not reach")


def headers_problem(headers: dict[str, str]) -> str | None:
    """Why a webhook's headers are refused, or None."""
    if len(headers) > MAX_HEADERS:
        return f"at most {MAX_HEADERS} headers"
    seen: set[str] = set()
    for name, value in headers.items():
        shown = repr(name[:MAX_HEADER_NAME_CHARS])  # repr escapes what is not printable
        if len(name) > MAX_HEADER_NAME_CHARS or not _TOKEN.fullmatch(name):
            return (
                f"invalid header name {shown}: 1 to {MAX_HEADER_NAME_CHARS} letters, digits "
                "or !#$%&'*+-.^_`|~"
            )
        lower = name.lower()
        if lower in RESERVED_HEADERS:
            return f"header {shown} is set by the scheduler"
        if lower in CONNECTION_HEADERS:
            return f"header {shown} is about the connection, which the scheduler manages"
        if lower in seen:
            return f"header {shown} is given twice (header names are case-insensitive)"
        seen.add(lower)
        if problem := header_value_problem(value):
            return f"invalid value for header {shown}: {problem}"
    return None


def header_value_problem(value: str) -> str | None:
    if len(value) > MAX_HEADER_VALUE_CHARS:
        return f"longer than {MAX_HEADER_VALUE_CHARS} characters"
    if _FIELD_VALUE.fullmatch(value):
        return None
    if value != value.strip(" \t"):
        return "it starts or ends with whitespace"
    if _CONTROL.search(value):
        return "it contains a line break or another control character"
    return (
        "it contains characters other than printable ASCII (RFC 9110); "
        "encode such text, e.g. percent- or base64-encoded"
    )
