"""Typed errors that the HTTP edge maps, once, to DESIGN.md's JSON error shape.

Domain code raises these (or subclasses with a specific `code`); the app
factory turns them into `{"error": {"code": ..., "message": ...}}` with the
class's status. Nothing else in a service builds an error response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi.responses import JSONResponse


class BelfryError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = code or self.code
        self.details = details
        self.headers = headers or {}


class BadRequest(BelfryError):
    status = 400
    code = "bad_request"


class Unauthorized(BelfryError):
    status = 401
    code = "unauthorized"


class Forbidden(BelfryError):
    status = 403
    code = "forbidden"


class NotFound(BelfryError):
    status = 404
    code = "not_found"


class Conflict(BelfryError):
    status = 409
    code = "conflict"


class PayloadTooLarge(BelfryError):
    status = 413
    code = "payload_too_large"


class Unprocessable(BelfryError):
    status = 422
    code = "validation_error"


class TooManyRequests(BelfryError):
    status = 429
    code = "too_many_requests"


class ServiceUnavailable(BelfryError):
    """A dependency is down or throttling us and retries ran out; try again later."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_seconds: int = 1, code: str | None = None):
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after_seconds)})
        self.retry_after_seconds = retry_after_seconds


# The code of an error that no Belfry error class names (a 404 for an unknown path,
# a 405, Starlette's own HTTP errors): its status's.
STATUS_CODES = {
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
    500: "internal_error",
    503: "service_unavailable",
}


def status_code_name(status: int) -> str:
    """The generic `code` of an HTTP error status (`error` for one without a name)."""
    return STATUS_CODES.get(status, "error")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """DESIGN.md's error shape: `{"error": {"code", "message", "details"?}}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def json_error(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details), status_code=status, headers=dict(headers or {})
    )
