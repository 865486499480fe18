"""Chime's errors, raised by handlers and rendered on the wire by `wire.render_error`.

A handler raises `ChimeError(Kind.NOT_FOUND, "...")`; the name of the exception
depends on the service (meetings says `ThrottlingException` where messaging and
identity say `ThrottledClientException`), and so does the HTTP status, which
comes from the error shape of the service model.
"""

from __future__ import annotations

import enum

IDENTITY = "chime-sdk-identity"
MEETINGS = "chime-sdk-meetings"
MESSAGING = "chime-sdk-messaging"
SERVICES = (IDENTITY, MEETINGS, MESSAGING)


class Kind(enum.Enum):
    BAD_REQUEST = "BadRequest"
    NOT_FOUND = "NotFound"
    FORBIDDEN = "Forbidden"
    CONFLICT = "Conflict"
    THROTTLED = "Throttled"
    LIMIT_EXCEEDED = "ResourceLimitExceeded"
    UNAUTHORIZED = "Unauthorized"
    SERVICE_FAILURE = "ServiceFailure"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    UNKNOWN_OPERATION = "UnknownOperation"


_COMMON_NAMES = {
    Kind.BAD_REQUEST: "BadRequestException",
    Kind.NOT_FOUND: "NotFoundException",
    Kind.FORBIDDEN: "ForbiddenException",
    Kind.CONFLICT: "ConflictException",
    Kind.SERVICE_FAILURE: "ServiceFailureException",
    Kind.SERVICE_UNAVAILABLE: "ServiceUnavailableException",
    Kind.UNKNOWN_OPERATION: "UnknownOperationException",
}
_MEETINGS_NAMES = {
    Kind.THROTTLED: "ThrottlingException",
    Kind.LIMIT_EXCEEDED: "LimitExceededException",
    Kind.UNAUTHORIZED: "UnauthorizedException",
}
_CLIENT_NAMES = {
    Kind.THROTTLED: "ThrottledClientException",
    Kind.LIMIT_EXCEEDED: "ResourceLimitExceededException",
    Kind.UNAUTHORIZED: "UnauthorizedClientException",
}
# Used when a service model has no shape for the error (UnknownOperation).
_FALLBACK_STATUS = {
    Kind.BAD_REQUEST: 400,
    Kind.NOT_FOUND: 404,
    Kind.FORBIDDEN: 403,
    Kind.CONFLICT: 409,
    Kind.THROTTLED: 429,
    Kind.LIMIT_EXCEEDED: 400,
    Kind.UNAUTHORIZED: 401,
    Kind.SERVICE_FAILURE: 500,
    Kind.SERVICE_UNAVAILABLE: 503,
    Kind.UNKNOWN_OPERATION: 404,
}


def exception_name(kind: Kind, service: str | None) -> str:
    if kind in _COMMON_NAMES:
        return _COMMON_NAMES[kind]
    names = _MEETINGS_NAMES if service == MEETINGS else _CLIENT_NAMES
    return names[kind]


def body_code(kind: Kind, service: str | None) -> str:
    """The `Code` member of the error body (the ErrorCode enum of the models)."""
    if kind is Kind.THROTTLED and service == MEETINGS:
        return "Throttling"
    return kind.value


def fallback_status(kind: Kind) -> int:
    return _FALLBACK_STATUS[kind]


class ChimeError(Exception):
    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def bad_request(message: str) -> ChimeError:
    return ChimeError(Kind.BAD_REQUEST, message)


def not_found(message: str) -> ChimeError:
    return ChimeError(Kind.NOT_FOUND, message)


def forbidden(message: str) -> ChimeError:
    return ChimeError(Kind.FORBIDDEN, message)


def conflict(message: str) -> ChimeError:
    return ChimeError(Kind.CONFLICT, message)
