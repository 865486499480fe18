"""The ASGI app: the three Chime SDK APIs, the messaging WebSocket and the control API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from emulators.chime.control_api import control_routes
from emulators.chime.emulator import ChimeRequest, Emulator
from emulators.chime.sessions import serve_session

# Idle connections stay open longer than SDK clients keep them pooled, as AWS
# endpoints do: with uvicorn's default of 5 s a client without retries could
# reuse a connection the server was closing (EndpointConnectionError).
KEEP_ALIVE_SECONDS = 75

_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def create_app(emulator: Emulator | None = None) -> Starlette:
    emulator = emulator or Emulator()

    async def chime_api(request: Request) -> Response:
        body = await request.body()
        # The raw path: URI labels are ARNs whose '/' arrive percent-encoded.
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
        query = parse_qs(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in request.scope["headers"]
        }
        response = emulator.handle(ChimeRequest(request.method, path, query, headers, body))
        return Response(response.body, status_code=response.status, headers=response.headers)

    async def connect(websocket: WebSocket) -> None:
        emulator.counters.record("calls", "Connect")
        await serve_session(websocket, emulator.hub, lambda arn: arn in emulator.identity.users)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Only the clean-up: background tasks start from requests, because the
        # platform embeds the emulator with lifespan="off".
        yield
        await emulator.aclose()

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Mount("/_emulator", routes=control_routes(emulator)),
            WebSocketRoute("/connect", connect),
            Route("/{path:path}", chime_api, methods=_METHODS),
        ],
    )
    app.state.emulator = emulator
    return app
