"""Local runs: HS256 tokens shaped like Cognito access tokens, and how to mint them."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any, Final

import jwt

from shared.settings import BelfrySettings

from .claims import DEFAULT_LEEWAY_SECONDS, GROUPS_CLAIM, decode_access_token
from .principal import KNOWN_GROUPS, Principal

ALGORITHM: Final = "HS256"


class LocalTokenVerifier:
    # No provider to ask: a local token lives until its `exp` (docs/sign-in.md).
    revocation_check_seconds: float | None = None

    def __init__(
        self,
        secret: str | bytes,
        issuer: str,
        client_id: str,
        *,
        leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
    ) -> None:
        if not secret:
            raise ValueError("the local signing secret is empty")
        self._secret = secret
        self._issuer = issuer
        self._client_ids = frozenset({client_id})
        self._leeway = leeway_seconds

    async def verify(self, token: str) -> Principal:
        return decode_access_token(
            token,
            self._secret,
            algorithm=ALGORITHM,
            issuer=self._issuer,
            client_ids=self._client_ids,
            leeway_seconds=self._leeway,
        )


def mint_local_token(
    settings: BelfrySettings,
    sub: str,
    groups: Iterable[str] = (),
    ttl_seconds: int = 3600,
    username: str | None = None,
) -> str:
    """A token that `LocalTokenVerifier` built from the same settings accepts."""
    if not sub:
        raise ValueError("sub must not be empty")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    group_list = sorted(set(groups))
    unknown = set(group_list) - KNOWN_GROUPS
    if unknown:
        known = ", ".join(sorted(KNOWN_GROUPS))
        raise ValueError(f"unknown group(s) {', '.join(sorted(unknown))}; known: {known}")
    issued_at = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "iss": settings.auth_local_issuer,
        "client_id": settings.auth_local_client_id,
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": issued_at,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
        "jti": str(uuid.uuid4()),
        "username": username or sub,
    }
    if group_list:  # like Cognito, which leaves the claim out for a user in no group
        claims[GROUPS_CLAIM] = group_list
    secret = settings.auth_local_secret.get_secret_value()
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def print_local_token(
    settings: BelfrySettings, sub: str, groups: list[str], ttl: int, username: str | None = None
) -> int:
    """Print an HS256 token (exit code 0), or say on stderr why not (2)."""
    if settings.auth_mode != "local":
        print(
            f"error: BELFRY_AUTH_MODE is {settings.auth_mode!r}; "
            "local tokens are accepted only in local mode",
            file=sys.stderr,
        )
        return 2
    try:
        token = mint_local_token(settings, sub, groups, ttl, username)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0
