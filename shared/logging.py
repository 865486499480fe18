"""structlog configuration and the request/event context every log line carries.

`correlation_id` and `event_id` live in structlog's context variables: the HTTP
middleware binds the correlation id of a request, the bus binds the event's ids
around its handler, and `Envelope.new` reads the current correlation id so that
it travels from request to event to handler.

Nothing secret reaches a log line (`redact`): every record that the root
handler writes (structlog's, uvicorn's access and error loggers, websockets',
libraries') goes through it after rendering, and structlog's values are
redacted by key first. It blanks query parameters named like a token
(`?token=`, `access_token`, `X-Amz-Security-Token`, …), `Bearer <…>`
credentials, JWT-shaped strings anywhere, and the values of keys such as
`token`, `authorization` and `password`.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Final, Literal

import structlog
from structlog.contextvars import bind_contextvars, get_contextvars, reset_contextvars

REDACTED: Final = "[redacted]"
# `?token=…`, `&access_token=…`, `X-Amz-Security-Token=…`, `password=…`: up to the
# next delimiter of a query string, a quote, a backslash (JSON's `\"`), a space or
# the end.
_SECRET_PARAMETER: Final = re.compile(
    r"(?i)((?:[\w.-]*token|password|secret|signature|credential)=)[^&\s\"'<>;,)\\]+"
)
_BEARER: Final = re.compile(r"(?i)\b(bearer\s+)[\w.~+/=-]+")
# Any JWT (header.payload.signature, base64url, the header always starts `eyJ`).
_JWT: Final = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
SECRET_KEYS: Final = frozenset(
    {"token", "access_token", "id_token", "refresh_token", "authorization", "password", "secret"}
)


def redact(text: str) -> str:
    """`text` without tokens, bearer credentials or secret query parameters."""
    if "=" not in text and "ey" not in text and "earer" not in text:
        return text  # the common case: nothing that could match
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    return _SECRET_PARAMETER.sub(rf"\1{REDACTED}", text)


def _redact_values(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: secret keys blanked, every string value redacted."""
    for key, value in event_dict.items():
        if key.lower() in SECRET_KEYS and value is not None:
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


class RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """The last word on every line: whatever was rendered (a traceback, a
    library's message with its own arguments) is redacted once more."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


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
        _redact_values,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        # Plain tracebacks: rich's show local variables (tokens among them) and wrap
        # long lines, which no redaction could then recognise.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = RedactingFormatter(
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
    # uvicorn's own logging config (any server started with it in this process)
    # gives its loggers handlers of their own, which would bypass the redaction.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        own = logging.getLogger(name)
        own.handlers.clear()
        own.propagate = True
        own.disabled = False
        own.setLevel(logging.NOTSET)
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
