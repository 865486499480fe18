"""uvicorn as every Belfry HTTP surface runs it: limits on what a client may
send before its request is even parsed.

uvicorn's httptools protocol reads headers of any size and waits for them for
ever: a client sending one byte at a time holds a connection, and a few
megabytes of headers are buffered whole. `GuardedHttpToolsProtocol` adds the
two limits a reverse proxy would otherwise give (nginx's
`client_header_timeout` and `large_client_header_buffers`), at the server, so
they hold in `make run`, in compose and in Kubernetes alike:

- the request line and headers must arrive within `http_header_timeout_seconds`
  of the connection opening or the previous response completing
  (else `408`, connection closed);
- they may total at most `http_max_header_bytes` (else `431`, closed).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import prometheus_client
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.logging import get_logger
from shared.settings import BelfrySettings

log = get_logger("belfry.http")

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header read deadline and a header size limit."""

    header_timeout_seconds: float = 10.0
    max_header_bytes: int = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None
        self._refusal: int | None = None

    # --- the deadline: armed while a request's head is awaited -----------------

    def _arm(self) -> None:
        self._disarm()
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(
            self.header_timeout_seconds, self._headers_timed_out
        )

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_timed_out(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            log.info("http.header_timeout", client=_client(self.client))
            self._refuse(408)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    # --- the size: counted as the parser hands the head over ---------------------

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refusal = 431
            raise _HeadersTooLarge  # httptools raises it from feed_data as a parser error

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        log.info("http.headers_too_large", client=_client(self.client))
        self._refuse(self._refusal)

    def _refuse(self, status: int) -> None:
        self._disarm()
        body = _REASONS[status].lower()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()


def _client(client: tuple[str, int] | None) -> str | None:
    return f"{client[0]}:{client[1]}" if client else None


def guarded_protocol(settings: BelfrySettings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with these settings' limits."""
    return type(
        "BelfryHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_seconds": settings.http_header_timeout_seconds,
            "max_header_bytes": settings.http_max_header_bytes,
        },
    )


def server_config(app: Any, settings: BelfrySettings, **options: Any) -> uvicorn.Config:
    """The uvicorn config of a Belfry app: the guarded protocol, no `Server`
    header (it named uvicorn), WebSocket pings, proxy headers."""
    defaults: dict[str, Any] = {
        "log_config": None,
        "proxy_headers": True,
        "server_header": False,
        "ws_ping_interval": 20,
        "ws_max_size": settings.http_max_body_bytes,
        "http": guarded_protocol(settings),
    }
    return uvicorn.Config(app, **{**defaults, **options})


class ExposedLocalSecret(SystemExit):
    """Start-up refused: the shipped local signing secret on a reachable address."""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_exposed_local_secret(settings: BelfrySettings) -> None:
    """Local tokens are signed with a secret anyone can read in this repository:
    a process that accepts them must not listen beyond loopback with it."""
    field = BelfrySettings.model_fields["auth_local_secret"]
    shipped = field.get_default().get_secret_value()
    if (
        settings.auth_mode == "local"
        and settings.auth_local_secret.get_secret_value() == shipped
        and not _loopback(settings.host)
    ):
        raise ExposedLocalSecret(
            f"belfry: refusing to listen on {settings.host} with the shipped local signing "
            "secret: set BELFRY_AUTH_LOCAL_SECRET (or BELFRY_AUTH_MODE=cognito), or listen "
            "on 127.0.0.1"
        )


def serve_metrics_apart(settings: BelfrySettings) -> None:
    """/metrics on its own (internal) port, when `BELFRY_METRICS_PORT` says so."""
    if settings.metrics_port is not None:
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.host)
        log.info("http.metrics_port", port=settings.metrics_port)
