"""structlog configuration and the request/event context every log line carries.

`correlation_id` and `event_id` live in structlog's context variables: the HTTP
middleware binds the correlation id of a request, the bus binds the event's ids
around its handler, and `Envelope.new` reads the current correlation id so that
it travels from request to event to handler.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import structlog
from structlog.contextvars import bind_contextvars, get_contextvars, reset_contextvars


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    """Route structlog and stdlib logging through one pipeline; JSON unless on a TTY."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if as_json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that are chatty at INFO: keep their warnings only.
    for noisy in ("aiormq", "aio_pika", "botocore", "aiobotocore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _identity(_: Any, __: str, event_dict: Any) -> Any:
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    value = get_contextvars().get("correlation_id")
    return str(value) if value is not None else None


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind values (correlation_id, event_id, ...) for the duration of a block."""
    tokens = bind_contextvars(**{k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        reset_contextvars(**tokens)
