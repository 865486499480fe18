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
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bound_contextvars

from shared import metrics
from shared.auth.config import AuthConfig, auth_config
from shared.bus import PublishFailed
from shared.edge import EdgeMiddleware, operations_of
from shared.errors import BelfryError, error_body, json_error, status_code_name
from shared.logging import get_logger, new_correlation_id
from shared.metrics import Gauge
from shared.openapi import errors, install_contract, mount_docs, operation_id
from shared.settings import BelfrySettings
from shared.tracing import TracingMiddleware

log = get_logger("belfry.http")

CORRELATION_HEADER = "x-correlation-id"
ReadinessCheck = Callable[[], Awaitable[tuple[bool, Any]]]
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
    code = status_code_name(exc.status_code)
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return json_error(exc.status_code, code, message, headers=exc.headers)


def _unavailable(exc: Exception) -> bool:
    return isinstance(exc, PublishFailed | BotoConnectionError) or (
        isinstance(exc, ClientError)
        and exc.response.get("Error", {}).get("Code") in _UNAVAILABLE_AWS_CODES
    )


def _dependency_down(request: Request, exc: Exception) -> Response:
    log.warning("http.dependency_unavailable", path=request.url.path, error=repr(exc))
    return json_error(
        503,
        "service_unavailable",
        "a dependency is unavailable, try again",
        headers={"Retry-After": "1"},
    )


async def _dependency_error(request: Request, exc: Exception) -> Response:
    """A dependency that is down is a 503, answered inside the middleware (so it
    carries the correlation id and the CORS headers); any other AWS error goes on
    to `_unexpected_error`."""
    if not _unavailable(exc):
        raise exc
    return _dependency_down(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """The last line: anything unmapped is a 500 (a dependency that is down a
    503), JSON and without internals. Adapters should have mapped it already."""
    if _unavailable(exc):
        return _dependency_down(request, exc)
    log.error("http.unhandled_error", path=request.url.path, exc_info=exc)
    return json_error(500, "internal_error", "an unexpected error occurred")


# What browsers may send and read across origins (`BELFRY_CORS_ORIGINS`).
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-ID")
CORS_EXPOSED_HEADERS = ("X-Correlation-ID", "Retry-After")
CORS_MAX_AGE_SECONDS = 600


class _Cors(CORSMiddleware):
    """Starlette's CORS middleware; its preflight answers get `nosniff` like
    every other answer (they never reach the edge, which adds it)."""

    def preflight_response(self, request_headers: Any) -> Response:
        response = super().preflight_response(request_headers)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


_UNOBSERVED = frozenset({"/metrics", "/healthz", "/readyz"})
# OpenTelemetry's http.request.method: the known methods, any other is `_OTHER`.
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


def _method(scope: Scope) -> str:
    method = str(scope.get("method", "GET"))
    return method if method in _METHODS else "_OTHER"


def _template(scope: Scope) -> str:
    """The route template of a request the edge refused before routing (401, 413,
    429: the router never set `route`), from the app's operations; else `unmatched`."""
    try:
        operation = operations_of(scope["app"]).find(scope["method"], scope["path"])
    except Exception:  # no app, no OpenAPI document: nothing to name it by
        return "unmatched"
    return operation.path if operation is not None else "unmatched"


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
        active = self._active(scope)
        with bound_contextvars(correlation_id=correlation_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if active is not None:
                    active.dec()
                if scope["type"] == "http":
                    self._observe(scope, status, time.perf_counter() - started)

    def _active(self, scope: Scope) -> Gauge | None:
        """`http_server_active_requests`, raised for an HTTP request (not the probes)."""
        if scope["type"] != "http" or scope.get("path") in _UNOBSERVED:
            return None
        gauge = metrics.ACTIVE_REQUESTS.labels(self.service, _method(scope))
        gauge.inc()
        return gauge

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        """The request's duration (docs/operations.md), its log line; the probes
        and /metrics are neither counted nor logged."""
        method = _method(scope)
        template = getattr(scope.get("route"), "path", None) or _template(scope)
        if template in _UNOBSERVED or scope.get("path") in _UNOBSERVED:
            return
        metrics.REQUEST_DURATION.labels(self.service, method, template, str(status)).observe(
            seconds
        )
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
    settings: BelfrySettings | None = None,
) -> FastAPI:
    """`settings`: the process-wide ones (`BELFRY_CORS_ORIGINS`); the defaults if None."""
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,  # served offline by mount_docs (shared/openapi.py)
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.readiness = dict(readiness or {})
    app.add_middleware(EdgeMiddleware)
    # Outside the edge: a preflight is answered before the edge asks for a bearer,
    # and the edge's own refusals (401, 413, 429) carry the CORS headers.
    origins = (settings or BelfrySettings()).cors_origins
    if origins:
        app.add_middleware(
            _Cors,
            allow_origins=list(origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_REQUEST_HEADERS),
            expose_headers=list(CORS_EXPOSED_HEADERS),
            max_age=CORS_MAX_AGE_SECONDS,
        )
    app.add_middleware(CorrelationMiddleware, service=service)
    app.add_middleware(TracingMiddleware, service=service)  # outermost: a SERVER span
    app.add_exception_handler(BelfryError, _belfry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for dependency_error in (PublishFailed, BotoConnectionError, ClientError):
        app.add_exception_handler(dependency_error, _dependency_error)
    app.add_exception_handler(Exception, _unexpected_error)
    for router in routers:
        app.include_router(router)
    install_contract(app)
    mount_docs(app)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Broker connected, consumers attached, AWS reachable",
        responses=errors({503: ["not_ready"]}),
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
