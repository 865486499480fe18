"""The HTTP edge: what every request passes before a route sees it
(docs/security.md "Limits").

In this order, for a request that matched a route:

1. a route that needs a caller verifies the bearer token first, before any
   byte of the body is read: a stranger's body is never parsed (401 beats 400);
2. the caller's rate limit for the route (`shared.ratelimit`; 429 with
   `Retry-After`);
3. the body, read up to the route's limit (`BELFRY_HTTP_MAX_BODY_BYTES`, or
   `BELFRY_HTTP_BODY_LIMITS` by route): a `Content-Length` over it is refused
   before reading, a stream that grows past it as soon as it does (413); a JSON
   body nested deeper than `BELFRY_HTTP_MAX_JSON_DEPTH` is refused (400
   `invalid_json`) before the parser could recurse on it.

Every answer gets `X-Content-Type-Options: nosniff`; API answers also
`Cache-Control: no-store` (the static console keeps its own caching). /docs,
/redoc (and their assets under /docs/assets/), /openapi.json and /metrics
answer 404 when settings turn them off.
The verified caller is left in the request state, so the route's own
`CurrentUser` dependency does not verify the token twice.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth.dependencies import app_verifier, bearer_token
from shared.errors import BelfryError, PayloadTooLarge, json_error
from shared.settings import BelfrySettings

PRINCIPAL_STATE = "principal"
# A body this much over its limit is still read (and dropped) before the 413, so
# that the client reads the answer instead of a reset connection.
DRAIN_BYTES = 1024 * 1024
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
DOCS_ASSETS_PREFIX = "/docs/assets/"  # Swagger UI's and ReDoc's files (shared/openapi.py)
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text nests arrays/objects deeper than `limit` (strings,
    where brackets mean nothing, are skipped)."""
    brackets = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    depth = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


@dataclass(frozen=True)
class Operation:
    """A route as the app's OpenAPI document declares it."""

    method: str
    path: str  # the template, e.g. /chat/channels/{channel_id}/messages
    needs_caller: bool  # it declares the bearer scheme


class Operations:
    """Which operation a request is, from the app's own OpenAPI document: the
    public description of its routes (FastAPI's router resolves them lazily)."""

    def __init__(self, document: dict[str, Any]) -> None:
        found: list[tuple[tuple[int, int], re.Pattern[str], dict[str, Operation]]] = []
        for path, item in document.get("paths", {}).items():
            by_method = {
                method.upper(): Operation(method.upper(), path, bool(op.get("security")))
                for method, op in item.items()
                if isinstance(op, dict) and method.upper() in _METHODS
            }
            params = path.count("{")
            found.append(((params, -len(path)), re.compile(_pattern(path)), by_method))
        found.sort(key=lambda entry: entry[0])  # literal segments before parameters
        self._table = [(pattern, by_method) for _, pattern, by_method in found]

    def find(self, method: str, path: str) -> Operation | None:
        for pattern, by_method in self._table:
            if pattern.fullmatch(path):
                return by_method.get("GET" if method == "HEAD" else method)
        return None


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"})


def _pattern(template: str) -> str:
    parts = re.split(r"(\{[^}]+\})", template)
    return "".join(
        (".+" if part.endswith(":path}") else "[^/]+") if part.startswith("{") else re.escape(part)
        for part in parts
    )


def operations_of(app: Any) -> Operations:
    """The app's operations, read from its OpenAPI document once."""
    table = getattr(app.state, "edge_operations", None)
    if table is None:
        table = app.state.edge_operations = Operations(app.openapi())
    return table


class EdgeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        send = _with_security_headers(send)
        route = operations_of(scope["app"]).find(scope["method"], path)
        refusal = _hidden(_settings(scope["app"]), path)
        if refusal is None and route is not None and route.needs_caller:
            refusal = await _caller(scope, route)
        if refusal is not None:
            await refusal(scope, _no_receive, send)
            return
        if route is not None:
            receive, refusal = await _body(scope, receive, route)
            if refusal is not None:
                await refusal(scope, _no_receive, send)
                return
        await self.app(scope, receive, send)


async def _caller(scope: Scope, route: Operation) -> Response | None:
    """Verify the caller of a route that needs one, then their rate limit."""
    app = scope["app"]
    try:
        token = bearer_token(_header(scope, b"authorization"))
        principal = await app_verifier(app).verify(token)
    except BelfryError as exc:
        return json_error(exc.status, exc.error_code, exc.message, headers=exc.headers)
    scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
    limiter = getattr(app.state, "rate_limiter", None)
    if limiter is None:
        return None
    retry = await limiter.admit(principal.user_id, route.method, route.path)
    if retry is None:
        return None
    seconds = max(1, math.ceil(retry))
    message = f"too many requests to {route.method} {route.path}; retry in {seconds} s"
    return json_error(429, "rate_limited", message, headers={"Retry-After": str(seconds)})


@functools.cache
def _defaults() -> BelfrySettings:
    return BelfrySettings()


def _settings(app: Any) -> BelfrySettings:
    """The app's settings (`create_platform_app` sets them), else the defaults."""
    settings = getattr(app.state, "settings", None)
    return settings if isinstance(settings, BelfrySettings) else _defaults()


def _hidden(settings: BelfrySettings, path: str) -> Response | None:
    """404 for the documentation and the metrics when settings turn them off here."""
    if (path in DOCS_PATHS or path.startswith(DOCS_ASSETS_PREFIX)) and not settings.http_docs:
        return json_error(404, "not_found", "Not Found")
    if path == "/metrics" and not (settings.http_metrics and settings.metrics_port is None):
        return json_error(404, "not_found", "Not Found")
    return None


async def _body(
    scope: Scope, receive: Receive, route: Operation
) -> tuple[Receive, Response | None]:
    """What the app reads the body from, or the refusal. A JSON body (or one of
    no declared type) is read here, whole, within its limit, and its depth
    checked; any other (an upload) streams through, cut off at its limit."""
    settings = _settings(scope["app"])
    content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    json = not content_type or content_type == "application/json" or content_type.endswith("+json")
    default = settings.http_max_body_bytes if json else settings.http_max_upload_bytes
    limit = settings.http_body_limits.get(f"{route.method} {route.path}", default)
    declared = _header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        # read and drop a body a little over the limit, so the client gets to read
        # its 413 (closing on unread data resets the connection); never a large one
        drained = int(declared) <= limit + DRAIN_BYTES and await _drain(receive, int(declared))
        return receive, _too_large(limit, drained=drained)
    if not json:
        return bounded_receive(receive, limit), None
    body, ended = await _read_body(receive, limit)
    if body is None:
        return receive, _too_large(limit, drained=ended or await _drain(receive, DRAIN_BYTES))
    depth = settings.http_max_json_depth
    if body and json_depth_exceeds(body, depth):
        message = f"the request body nests deeper than {depth} levels"
        return receive, json_error(400, "invalid_json", message)
    return _replay(body, receive), None


def _too_large(limit: int, *, drained: bool) -> Response:
    """413; the connection closes unless the whole body was read."""
    message = f"the request body exceeds {limit} bytes"
    headers = {} if drained else {"Connection": "close"}
    return json_error(413, "payload_too_large", message, headers=headers)


async def _drain(receive: Receive, budget: int) -> bool:
    """Read and drop the rest of the body, at most `budget` bytes: whether it ended."""
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return budget >= 0
    return False


def bounded_receive(
    receive: Receive, limit: int, too_large: Callable[[], Exception] | None = None
) -> Receive:
    """`receive`, raising `too_large()` (a 413 `payload_too_large` by default)
    once more than `limit` body bytes came: a body without (or with a false)
    Content-Length is cut off at the limit, never buffered or spooled whole."""
    received = 0

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                if too_large is None:
                    raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
                raise too_large()
        return message

    return bounded


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The whole body (None as soon as it exceeds `limit`: reading stops), and
    whether the body has ended."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True  # the client left: the app sees the disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        ended = not message.get("more_body", False)
        if size > limit:
            return None, ended
        chunks.append(chunk)
        if ended:
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _with_security_headers(send: Send) -> Send:
    """nosniff on every answer; API answers (JSON, errors included) are also
    never stored nor framed. Static files (the console) keep their caching."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {bytes(name).lower(): bytes(value) for name, value in headers}
            extra = [(b"x-content-type-options", b"nosniff")]
            media = present.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media == b"application/json" or media.endswith(b"+json"):
                extra += [(b"cache-control", b"no-store"), (b"x-frame-options", b"DENY")]
            message["headers"] = [*headers, *((n, v) for n, v in extra if n not in present)]
        await send(message)

    return sending
