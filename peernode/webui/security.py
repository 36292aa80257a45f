"""What every web request passes through: the Host check, the Origin check, CSRF tokens, and
the response headers (a strict Content-Security-Policy, no sniffing, no framing, no referrer).

Host: a page served under a name an attacker controls (DNS rebinding) would let the attacker's
script read and post to this node as if same-origin. Only the node's own names pass: loopback,
the listen and advertised hosts, the address the connection arrived on, and ``web_hosts``.
Peers (``/sync``, the join), OAI harvesters and Prometheus reach the node under names of their
choosing and prove nothing by the Host header, so those paths are left out of the check.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..home import Config
from ..oai import PATH as OAI_PATH
from ..peers import JOIN_PATH

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Paths whose clients are other programs, under names of their own: not web pages.
EXEMPT_PATHS = frozenset(("/sync", JOIN_PATH, OAI_PATH, "/metrics"))
CSRF_COOKIE = "pn_csrf"
CSRF_FIELD = "csrf"
UNSAFE_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))
CSRF_SEED = web.RequestKey("csrf_seed", str)  # this request's seed, new or from the cookie
CSRF_SEED_NEW = web.RequestKey("csrf_seed_new", bool)  # the response must set the cookie


def allowed_names(config: Config) -> frozenset[str]:
    """Host names (lower case, no port) under which this node's pages may be served."""
    names = {"localhost"}
    for address in (config.listen, config.advertise):
        host = address.rpartition(":")[0].strip("[]").lower()
        if host:
            names.add(host)
    names.update(h.strip().lower().rstrip(".") for h in config.web_hosts.split(",") if h.strip())
    return frozenset(names)


def split_host(header: str) -> str | None:
    """The host name of a Host header (``name``, ``name:port``, ``[v6]:port``), lower case."""
    header = header.strip().lower()
    if not header or len(header) > 300:
        return None
    if header.startswith("["):
        end = header.find("]")
        rest = header[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return header[1:end]
    host, sep, port = header.rpartition(":")
    if sep and port.isdigit():
        return host.rstrip(".")
    return header.rstrip(".")


def host_allowed(header: str, names: frozenset[str], local_ip: str | None) -> bool:
    host = split_host(header)
    if host is None:
        return False
    if host in names:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name that is not ours: the DNS rebinding case
    # An address literal cannot be rebound: loopback, or the address this connection came to.
    return ip.is_loopback or (local_ip is not None and ip == _ip(local_ip))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def origin_matches(origin: str, host_header: str) -> bool:
    """Whether a browser's Origin is this very page's scheme and host (same origin)."""
    parsed = urllib.parse.urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host_header.lower()


def guarded(path: str) -> bool:
    return path not in EXEMPT_PATHS


def security_middleware(
    names: Callable[[], frozenset[str]],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Refuse foreign Hosts (421) and cross-origin writes (403); add the security headers."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not guarded(request.path):
            return await handler(request)
        host = request.headers.get("Host", "")
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        local_ip = str(sock[0]) if isinstance(sock, tuple) and sock else None
        if not host_allowed(host, names(), local_ip):
            return _refusal(
                421,
                "This node does not serve pages under the name "
                f"{host[:100]!r}. Open it by its own address, or add the name to the setting "
                "web_hosts in peernode.toml.",
            )
        if request.method in UNSAFE_METHODS:
            origin = request.headers.get("Origin")
            if origin is not None and not origin_matches(origin, host):
                return _refusal(
                    403, f"Refused a {request.method} from another site ({origin[:100]!r})."
                )
            if request.headers.get("Sec-Fetch-Site", "same-origin") not in (
                "same-origin",
                "none",
            ):
                return _refusal(403, f"Refused a {request.method} from another site.")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _add_headers(exc)
            raise
        _add_headers(response)
        return response

    return middleware


def _refusal(status: int, text: str) -> web.Response:
    response = web.Response(status=status, text=text + "\n", content_type="text/plain")
    _add_headers(response)
    return response


def _add_headers(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # No referrer to other sites (a catalogue link learns nothing); "no-referrer" would also
    # make the browser send "Origin: null" on our own forms, which the Origin check refuses.
    headers.setdefault("Referrer-Policy", "same-origin")


def csrf_seed(request: web.Request) -> str:
    """The browser's CSRF seed (its HttpOnly cookie), made now if it has none yet; the
    response must then set it (``remember_csrf_seed``)."""
    if CSRF_SEED in request:
        return request[CSRF_SEED]
    cookie = request.cookies.get(CSRF_COOKIE, "")
    seed = cookie if 20 <= len(cookie) <= 100 else secrets.token_urlsafe(32)
    request[CSRF_SEED] = seed
    request[CSRF_SEED_NEW] = seed != cookie
    return seed


def csrf_token(secret: bytes, seed: str) -> str:
    return hmac.new(secret, seed.encode("ascii", "replace"), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, request: web.Request, submitted: object) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not isinstance(submitted, str):
        return False
    return hmac.compare_digest(csrf_token(secret, cookie), submitted)


def remember_csrf_seed(request: web.Request, response: web.StreamResponse) -> None:
    if request.get(CSRF_SEED_NEW):
        response.set_cookie(
            CSRF_COOKIE, request[CSRF_SEED], httponly=True, samesite="Strict", path="/"
        )


def safe_link(value: object) -> str | None:
    """``value`` as a link target when it is an http(s) URL, else None (shown as text)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > 2000 or any(ord(c) < 0x21 or 0x7F <= ord(c) <= 0x9F for c in text):
        return None
    if any(c in text for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"):
        return None  # bidi controls would make the shown link lie about where it goes
    try:
        parsed = urllib.parse.urlsplit(text)
    except ValueError:
        return None
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        return None
    return text


def local_path(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site (for redirects after a form), else ``default``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 0x20 for c in value) or len(value) > 2000:
        return default
    return value
