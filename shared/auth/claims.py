"""Decode a Cognito-shaped access token and check its claims, with client-safe errors.

Both verifiers end here, so local tokens get exactly the checks that production
tokens get. PyJWT checks the signature first, then `exp`/`iat`/`iss`; then we
check what PyJWT does not know about: `token_use`, `client_id`, the groups.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from types import MappingProxyType
from typing import Any, Final, TypeGuard

import jwt

from shared.errors import Unauthorized

from .principal import Principal

DEFAULT_LEEWAY_SECONDS: Final = 30.0
REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "sub", "token_use", "client_id")
GROUPS_CLAIM: Final = "cognito:groups"
# A `sub` becomes a user id in tables, keys, ARNs and logs: Cognito's are UUIDs;
# local ones are names. Anything else (empty, huge, `#`, `/`, spaces, control
# characters) is refused rather than carried into keys.
SUB_MAX_LENGTH: Final = 128
SUB_PATTERN: Final = re.compile(rf"[A-Za-z0-9._@:+-]{{1,{SUB_MAX_LENGTH}}}")

# PyJWT's messages are fine for logs; clients get these, and nothing else.
_MESSAGES: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.InvalidAlgorithmError, "token signing algorithm is not accepted"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.ImmatureSignatureError, "token is not yet valid"),
    (jwt.DecodeError, "token is malformed"),
)


def invalid_token(message: str, *, code: str = "invalid_token") -> Unauthorized:
    """An `Unauthorized` with the RFC 6750 challenge header (whose error is always
    `invalid_token`; our `code` tells an expired token apart, so clients know to refresh)."""
    challenge = f'Bearer error="invalid_token", error_description="{message}"'
    return Unauthorized(message, code=code, headers={"WWW-Authenticate": challenge})


def _translate(exc: jwt.PyJWTError) -> Unauthorized:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return invalid_token("token has expired", code="token_expired")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return invalid_token(f"token is missing the {exc.claim!r} claim")
    for kind, message in _MESSAGES:
        if isinstance(exc, kind):
            return invalid_token(message)
    return invalid_token("token is invalid")


def decode_access_token(
    token: str,
    key: Any,
    *,
    algorithm: str,
    issuer: str,
    client_ids: Collection[str],
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
) -> Principal:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            leeway=leeway_seconds,
            # Access tokens carry `client_id`, not `aud`; an ID token (which has `aud`)
            # is then refused below for its `token_use`, with a clearer message.
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise _translate(exc) from None
    return principal_from_claims(claims, client_ids=client_ids)


def valid_sub(sub: object) -> TypeGuard[str]:
    """Non-empty, at most `SUB_MAX_LENGTH` characters of letters, digits and `._@:+-`."""
    return isinstance(sub, str) and SUB_PATTERN.fullmatch(sub) is not None


def principal_from_claims(claims: dict[str, Any], *, client_ids: Collection[str]) -> Principal:
    if claims.get("token_use") != "access":
        raise invalid_token("token is not an access token")
    if claims.get("client_id") not in client_ids:
        raise invalid_token("token was issued for another client")
    sub = claims.get("sub")
    if not valid_sub(sub):
        raise invalid_token("token subject is malformed")
    groups = claims.get(GROUPS_CLAIM, [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise invalid_token("token groups are malformed")
    username = claims.get("username")
    return Principal(
        user_id=sub,
        username=username if isinstance(username, str) else None,
        groups=frozenset(groups),
        claims=MappingProxyType(claims),
    )
