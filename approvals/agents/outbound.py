"""Requests Countersign makes on an agent's word (its callbacks): to public addresses only.

A callback URL names where we send a signed POST, so an agent could point it at the
machine's own services or the internal network (SSRF). Loopback, private, link-local,
multicast and other non-public addresses are refused when the URL is registered and
again when each attempt connects, against what the name resolves to then (a name
re-pointed inside after registration, DNS rebinding, gets nowhere), and the connection
goes to exactly the address checked. `CALLBACK_ALLOWED_NETWORKS` lets an operator allow
an internal receiver deliberately.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator


class CallbackRefused(ValueError):
    """A callback URL (or the address its name resolves to) that callbacks may not reach; says why."""


_ASCII_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))
_url_shape = URLValidator(schemes=["http", "https"])
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The operator's exceptions to the public-addresses-only rule (CALLBACK_ALLOWED_NETWORKS)."""
    try:
        return [ipaddress.ip_network(n.strip(), strict=False) for n in settings.CALLBACK_ALLOWED_NETWORKS if n.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(f"CALLBACK_ALLOWED_NETWORKS: {exc}") from None


def why_unreachable(address: str) -> str | None:
    """Why callbacks may not go to this IP address, in words; None when they may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") names no other host
    if ip.version == 6:
        # An IPv4 address inside an IPv6 one is judged as itself: ::ffff:127.0.0.1 is 127.0.0.1, and
        # so are its 6to4 (2002:7f00:1::) and NAT64 (64:ff9b::7f00:1) forms.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        ip = embedded or ip
    if any(ip in network for network in allowed_networks()):
        return None
    for kind, test in (
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("an unspecified", ip.is_unspecified),
        ("a private", ip.is_private),
    ):
        if test:
            return f"{kind} address"
    if not ip.is_global:
        return "an address that is not public"
    return None


def check_url(url: str) -> str:
    """The callback URL, if callbacks may be sent there; raise CallbackRefused saying why not.

    The host's addresses are resolved now; each delivery resolves and checks them again.
    """
    check_url_shape(url)
    parts = urlsplit(url)
    resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    return url


def check_url_shape(url: str) -> None:
    """What can be checked without resolving the host: scheme, characters, no user or password."""
    if not set(url) <= _ASCII_PRINTABLE:
        raise CallbackRefused(
            "must be plain ASCII with no spaces or control characters "
            "(write an international domain name in its xn-- form and percent-encode the rest)"
        )
    try:
        _url_shape(url)
        parts = urlsplit(url)
        parts.port  # noqa: B018 (reading it checks it)
    except (DjangoValidationError, ValueError):
        raise CallbackRefused("must be an http or https URL") from None
    if "@" in parts.netloc:
        raise CallbackRefused("may not carry a user name or password (put a token in the path or query instead)")
    if not parts.hostname:
        raise CallbackRefused("must name a host")


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, every one of them one that callbacks may reach."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise CallbackRefused(f"names a host that does not resolve to an address ({host})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    for address in addresses:
        why = why_unreachable(address)
        if why is not None:
            what = f"it is {why}" if address == host.strip("[]") else f"it resolves to {address}, {why}"
            raise CallbackRefused(
                f"may not go to {host}: {what}; callbacks go to public addresses only, "
                "unless an operator allows the network in CALLBACK_ALLOWED_NETWORKS"
            )
    if not addresses:
        raise CallbackRefused(f"names a host that does not resolve to an address ({host})")
    return addresses


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A signed decision goes to the registered URL only, never where a redirect points.
    def redirect_request(self, *args, **kwargs):
        return None


def _connect_checked(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kwargs):
    # Resolve at connect time and connect to the very addresses checked: a name re-pointed at an
    # internal address after registration (DNS rebinding) is refused before any byte is sent.
    host, port = address
    error: OSError | None = None
    for ip in resolve(host, port):
        try:
            return socket.create_connection((ip, port), timeout, source_address)
        except OSError as exc:
            error = exc
    raise error or OSError(f"could not connect to {host}")


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_checked


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    # The TLS certificate is still checked against the host name: only the TCP connection is pinned.
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_checked


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_CheckedHTTPConnection, req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_CheckedHTTPSConnection, req, context=self._context)


# No proxy: the address checked must be the address called.
_opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), _NoRedirects, _CheckedHTTPHandler, _CheckedHTTPSHandler
)


@dataclass(frozen=True)
class Answer:
    status: int | None
    error: str = ""
    refused: bool = False  # we would not send it there: no retry can help


def post(url: str, body: bytes, headers: dict, *, timeout: float) -> Answer:
    """POST `body` to `url` if requests may go there; the answer, or why it was not sent (`refused`)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        check_url_shape(url)
        with _opener.open(request, timeout=timeout) as response:
            return Answer(response.status)
    except CallbackRefused as exc:
        return Answer(None, f"not sent: the callback URL {exc}", refused=True)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, f"HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        return Answer(None, _in_words(exc.reason))
    except (OSError, ValueError) as exc:
        return Answer(None, _in_words(exc))


def _in_words(reason) -> str:
    """ "the receiver refused the connection" rather than "[Errno 111] Connection refused"."""
    if isinstance(reason, ConnectionRefusedError):
        return "the receiver refused the connection (nothing listens there)"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(reason, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(reason, ConnectionResetError):
        return "the receiver dropped the connection"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason)
