"""FastAPI dependencies: the caller's `Principal` from `Authorization: Bearer <jwt>`.

The app keeps one `TokenVerifier` in `app.state.verifier` (set by the bootstrap).
These functions only raise `Unauthorized`/`Forbidden`; the app factory maps them
to the JSON error shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request, Security, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp
from starlette.websockets import WebSocketDisconnect, WebSocketState

from shared.errors import Forbidden, Unauthorized

from .principal import ADMIN, MANAGER, Principal, TokenVerifier

# Only for the OpenAPI document (the "Authorize" button, schemathesis); the header
# is parsed below so that every failure is our own `Unauthorized`.
bearer_scheme = HTTPBearer(
    auto_error=False, description="A Cognito access token; on a local run, `make token`."
)

WEBSOCKET_AUTH_TIMEOUT_SECONDS = 10.0


def _challenge(message: str) -> Unauthorized:
    return Unauthorized(message, headers={"WWW-Authenticate": "Bearer"})


def app_verifier(app: ASGIApp) -> TokenVerifier:
    verifier: TokenVerifier | None = getattr(getattr(app, "state", None), "verifier", None)
    if verifier is None:
        raise RuntimeError("app.state.verifier is not set; the bootstrap must install one")
    return verifier


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header value."""
    if not authorization:
        raise _challenge("missing bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise _challenge("the Authorization header must be 'Bearer <token>'")
    return token


async def current_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)] = None,
) -> Principal:
    # The HTTP edge (shared/edge.py) verified it before reading the body.
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        token = bearer_token(request.headers.get("authorization"))
        principal = await app_verifier(request.app).verify(token)
    structlog.contextvars.bind_contextvars(user_id=principal.user_id)
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require_groups(
    *groups: str,
) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that lets through a principal in at least one of `groups`."""
    if not groups:
        raise ValueError("require_groups needs at least one group")
    wanted = frozenset(groups)
    message = f"this requires one of the groups: {', '.join(sorted(wanted))}"

    async def principal_in_groups(principal: CurrentUser) -> Principal:
        if not principal.has_any(*wanted):
            raise Forbidden(message)
        return principal

    return principal_in_groups


AdminUser = Annotated[Principal, Depends(require_groups(ADMIN))]
ManagerUser = Annotated[Principal, Depends(require_groups(MANAGER))]
StaffUser = Annotated[Principal, Depends(require_groups(ADMIN, MANAGER))]


async def authenticate_websocket(
    websocket: WebSocket,
    verifier: TokenVerifier | None = None,
    *,
    timeout_seconds: float = WEBSOCKET_AUTH_TIMEOUT_SECONDS,
) -> Principal:
    """The principal of a WebSocket: `?token=<jwt>`, else a first text frame
    `{"type": "auth", "token": "<jwt>"}` within `timeout_seconds`.

    With a query token the socket is not accepted here, so the caller may refuse
    it before the handshake; otherwise it is accepted to read the frame. Raises
    `Unauthorized` (the caller closes with 4401 or 1008), or `WebSocketDisconnect`
    when the client leaves first. Prefer the frame: query strings end up in
    access logs (Belfry's own log redacts them, proxies' may not).
    """
    principal, _ = await websocket_credentials(websocket, verifier, timeout_seconds=timeout_seconds)
    return principal


async def websocket_credentials(
    websocket: WebSocket,
    verifier: TokenVerifier | None = None,
    *,
    timeout_seconds: float = WEBSOCKET_AUTH_TIMEOUT_SECONDS,
) -> tuple[Principal, str]:
    """`authenticate_websocket`, and the token (for a session that checks it again)."""
    verifier = verifier or app_verifier(websocket.app)
    token = websocket.query_params.get("token")
    if token is None:
        token = await _auth_frame_token(websocket, timeout_seconds)
    principal = await verifier.verify(token)
    structlog.contextvars.bind_contextvars(user_id=principal.user_id)
    return principal, token


async def _auth_frame_token(websocket: WebSocket, timeout_seconds: float) -> str:
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    try:
        async with asyncio.timeout(timeout_seconds):
            message = await websocket.receive()
    except TimeoutError:
        raise _challenge(f"no auth frame within {timeout_seconds:g} s") from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    token = auth_frame_token(message.get("text"))
    if not token:
        raise _challenge('the first frame must be {"type": "auth", "token": "<jwt>"}')
    return token


def auth_frame_token(text: str | None) -> str | None:
    """The token of a text frame `{"type": "auth", "token": "<jwt>"}`, else None."""
    try:
        frame = json.loads(text or "")
    except ValueError:
        return None
    token = frame.get("token") if isinstance(frame, dict) and frame.get("type") == "auth" else None
    return token if isinstance(token, str) and token else None
