"""The FastAPI app factory: JSON errors, correlation ids, health, readiness, metrics.

Every Belfry HTTP surface, one service or all four behind one port, is made
here, so the error shape, the probes and the request logs are the same
everywhere. Domain errors are mapped to DESIGN.md's JSON shape once, here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from functools import cache
from typing import Any

from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bound_contextvars

from shared import metrics
from shared.auth.config import AuthConfig, auth_config
from shared.bus import PublishFailed
from shared.edge import EdgeMiddleware
from shared.errors import BelfryError, error_body, json_error
from shared.logging import get_logger, new_correlation_id

log = get_logger("belfry.http")

CORRELATION_HEADER = "x-correlation-id"
ReadinessCheck = Callable[[], Awaitable[tuple[bool, Any]]]
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "service_unavailable",
}
_UNAVAILABLE_AWS_CODES = {
    "ThrottledClientException",
    "ThrottlingException",
    "ServiceUnavailableException",
    "ServiceFailureException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "TransactionConflictException",
}


async def _belfry_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BelfryError)
    return json_error(exc.status, exc.error_code, exc.message, exc.details, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return json_error(400, "invalid_json", "the request body is not valid JSON")
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type")}
        for e in errors
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"][1:] if len(first["loc"]) > 1 else first["loc"])
    return json_error(422, "validation_error", f"{where}: {first['msg']}".strip(": "), details)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return json_error(exc.status_code, code, message, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """The last line: a dependency that is down is a 503, anything else a 500;
    both JSON and without internals. Adapters should have mapped it already."""
    if isinstance(exc, PublishFailed | BotoConnectionError) or (
        isinstance(exc, ClientError)
        and exc.response.get("Error", {}).get("Code") in _UNAVAILABLE_AWS_CODES
    ):
        log.warning("http.dependency_unavailable", path=request.url.path, error=repr(exc))
        return json_error(
            503,
            "service_unavailable",
            "a dependency is unavailable, try again",
            headers={"Retry-After": "1"},
        )
    log.error("http.unhandled_error", path=request.url.path, exc_info=exc)
    return json_error(500, "internal_error", "an unexpected error occurred")


class CorrelationMiddleware:
    """Binds a correlation id (from `X-Correlation-ID`, else new) to the log
    context for the request, echoes it, and records request metrics."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(CORRELATION_HEADER.encode(), b"").decode("latin-1")
        correlation_id = incoming if 0 < len(incoming) <= 128 else new_correlation_id()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (CORRELATION_HEADER.encode(), correlation_id.encode()),
                ]
            await send(message)

        started = time.perf_counter()
        with bound_contextvars(correlation_id=correlation_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if scope["type"] == "http":
                    self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        if template in ("/metrics", "/healthz", "/readyz"):
            return
        method = scope.get("method", "GET")
        metrics.HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
        metrics.HTTP_SECONDS.labels(self.service, method, template).observe(seconds)
        log.info(
            "http.request",
            method=method,
            route=template,
            status=status,
            ms=round(seconds * 1000, 1),
        )


@cache
def asyncapi_yaml() -> str:
    """The AsyncAPI document of every event and queue, rendered once, when first asked for."""
    from shared.asyncapi import render

    return render()


def create_app(
    *,
    title: str,
    service: str,
    routers: Sequence[APIRouter],
    readiness: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    description: str = "",
    version: str = "0.1.0",
) -> FastAPI:
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.readiness = dict(readiness or {})
    app.add_middleware(EdgeMiddleware)
    app.add_middleware(CorrelationMiddleware, service=service)
    app.add_exception_handler(BelfryError, _belfry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Broker connected, consumers attached, AWS reachable",
    )
    async def readyz(request: Request) -> Response:
        checks: dict[str, Any] = {}
        ready = True
        for name, check in request.app.state.readiness.items():
            try:
                ok, detail = await check()
            except Exception as exc:
                ok, detail = False, repr(exc)
            checks[name] = {"ok": ok, "detail": detail}
            ready = ready and ok
        if ready:
            return JSONResponse({"status": "ready", "checks": checks})
        body = error_body("not_ready", "a dependency is not ready", details=checks)
        return JSONResponse(body, status_code=503)

    @app.get(
        "/auth/config",
        tags=["auth"],
        summary="Where browsers sign in: the Cognito user pool and app client, or local mode",
        response_model=AuthConfig,
        response_model_exclude_none=True,
    )
    async def public_auth_config(request: Request) -> AuthConfig:
        # The process-wide settings (`create_platform_app` sets them): the ones its verifier uses.
        settings = getattr(request.app.state, "settings", None)
        if settings is None:
            raise RuntimeError("app.state.settings is not set; the bootstrap must set it")
        return auth_config(settings)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        payload, content_type = metrics.render_latest()
        return Response(payload, media_type=content_type)

    @app.get(
        "/asyncapi.yaml",
        tags=["operations"],
        summary="The AsyncAPI 3.0 document of every event and queue",
        response_class=Response,
        responses={200: {"content": {"application/yaml": {}}}},
    )
    async def asyncapi() -> Response:
        return Response(asyncapi_yaml(), media_type="application/yaml")

    return app
