"""The gate: checks every request before the app sees it (an ASGI middleware), so a refused WebSocket gets an
HTTP status on the handshake and is never accepted. The policy is written down in docs/deployment.md.

- every request: at most `max_headers` headers and `max_header_bytes` of them (431);
- WebSocket handshakes: the Origin (the page's own origin, or one in `allowed_origins`; 403), the access token
  (`token` query parameter; 403), then per-address limits (open connections, connections a minute; 429);
- `/metrics`: open in `open` mode; otherwise only from loopback or with an operator token (403).

The client address is the peer's, or the one a trusted proxy names in X-Forwarded-For: uvicorn's
ProxyHeadersMiddleware, wrapped around this gate by the app, decides that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from babelfish import protocol as proto
from babelfish.config import Settings
from babelfish.metrics import Metrics
from babelfish.tokens import Token, TokenStore

if TYPE_CHECKING:
    from babelfish.hub import Hub

log = logging.getLogger(__name__)
CALLER = "babelfish.caller"  # scope key: the Caller the gate admitted
REVOCATION_CHECK_SECONDS = 5.0  # how soon a revoked token's open connections are closed


@dataclass(frozen=True)
class Caller:
    """Who opened a WebSocket, as the gate found it."""

    address: str
    token: Token | None
    origin: str | None


class AddressLimits:
    """Per client address: open WebSockets (a count), and connections and new rooms a minute (sliding windows).

    Sliding-window counters, not limits' moving window: its memory storage keeps an entry for every address it ever
    saw, so a stream of new addresses (an IPv6 prefix) would grow it forever; counters expire with their window."""

    def __init__(self, settings: Settings) -> None:
        self.max_open = settings.max_connections_per_address
        self._open: Counter[str] = Counter()
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._joins = RateLimitItemPerMinute(settings.max_joins_per_minute)
        self._rooms = RateLimitItemPerMinute(settings.max_rooms_per_minute)

    def open_count(self, address: str) -> int:
        return self._open[address]

    def connect(self, address: str) -> str | None:
        """Count a new connection; the name of the limit it would break instead (then nothing is counted)."""
        if self._open[address] >= self.max_open:
            return "connections_per_address"
        if not self._limiter.hit(self._joins, "joins", address):
            return "joins_per_minute"
        self._open[address] += 1
        return None

    def disconnect(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]  # the counter holds only addresses with open connections

    def may_create_room(self, address: str) -> bool:
        return self._limiter.hit(self._rooms, "rooms", address)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _origin_host(origin: str) -> str | None:
    """`host[:port]` of an Origin header (lower case), or None for `null` and anything unparsable."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return None
    return parts.netloc.lower()


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class Gate:
    def __init__(
        self, app: ASGIApp, settings: Settings, tokens: TokenStore, limits: AddressLimits, metrics: Metrics
    ) -> None:
        self.app = app
        self.settings = settings
        self.tokens = tokens
        self.limits = limits
        self.metrics = metrics
        self.allowed_origins = frozenset(normalise_origin(o) for o in settings.allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(headers) > self.settings.max_headers:
            await self._refuse(scope, receive, send, "too_many_headers", 431, "too many request headers")
            return
        if sum(len(k) + len(v) + 4 for k, v in headers) > self.settings.max_header_bytes:
            await self._refuse(scope, receive, send, "headers_too_large", 431, "request headers too large")
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["path"] == "/metrics":
            if not self._may_read_metrics(scope):
                await self._refuse(
                    scope, receive, send, "metrics_forbidden", 403, "metrics are for the operator: loopback or a token"
                )
                return
            # No Origin, no CORS headers: another site's page may not read the metrics through a visitor's browser.
            scope = {**scope, "headers": [(k, v) for k, v in headers if k != b"origin"]}
            await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = _address(scope)
        origin = _header(scope, b"origin")
        # "null" (a sandboxed frame, a file page) is an origin like any other: refused unless the operator lists it.
        # Our own page opened from a file never opens a WebSocket; it continues on the server's page.
        if origin is not None and not self._origin_allowed(origin, _header(scope, b"host")):
            await self._refuse(scope, receive, send, "origin", 403, f"origin {origin[:100]} may not connect here")
            return
        secret = _query(scope, "token") or _bearer(scope)
        token = self.tokens.check(secret) if secret else None
        access = self.settings.access
        if secret and token is None:
            await self._refuse(scope, receive, send, "bad_token", 403, "unknown or revoked access token")
            return
        if token is None and (access == "token" or (access == "passcode" and origin is None)):
            await self._refuse(scope, receive, send, "missing_token", 403, "this server needs an access token")
            return
        broken = self.limits.connect(address)
        if broken is not None:
            await self._refuse(scope, receive, send, broken, 429, "too many connections from your address")
            return
        scope[CALLER] = Caller(address, token, origin)
        try:
            await self.app(scope, receive, send)
        finally:
            self.limits.disconnect(address)

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        own = _origin_host(origin)  # None for "null"
        if own is not None and host is not None and own == host.lower():
            return True  # the page this server served
        return normalise_origin(origin) in self.allowed_origins

    def _may_read_metrics(self, scope: Scope) -> bool:
        if self.settings.access == "open" or is_loopback(_address(scope)):
            return True
        secret = _bearer(scope) or _query(scope, "token")
        token = self.tokens.check(secret) if secret else None
        return token is not None and token.operator

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, reason: str, status: int, text: str) -> None:
        self.metrics.refused(reason)
        log.info("refused %s %s from %s: %s", scope["type"], scope["path"], _address(scope), reason)
        headers = {"Retry-After": "60"} if status == 429 else None
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
            # A server without the denial-response extension: closing before accept is an HTTP 403.
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        await PlainTextResponse(f"{status}: {text}\n", status, headers)(scope, receive, send)


async def close_revoked(hub: Hub, tokens: TokenStore, every: float | None = None) -> None:
    """Forever: close the open connections whose token was revoked (1008, `token_revoked`), within `every` seconds."""
    while True:
        await asyncio.sleep(REVOCATION_CHECK_SECONDS if every is None else every)
        revoked = []
        try:
            for writer in list(hub.connections):
                caller: Caller | None = writer.ws.scope.get(CALLER)
                if caller is not None and caller.token is not None and not tokens.in_force(caller.token):
                    log.info("closing %s: its token %r was revoked", writer.who, caller.token.name)
                    revoked.append(writer)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # a half-edited or unreadable file
            # Try again next round: one bad read must not end revocation for the life of the server.
            log.warning("cannot read the token file %s: %s", tokens.path, exc)
            continue
        error = proto.Error(code="token_revoked", message="your access token was revoked")
        await asyncio.gather(*(w.close_with(error, proto.CLOSE_POLICY_VIOLATION, "token revoked") for w in revoked))


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _query(scope: Scope, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None
