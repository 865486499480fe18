"""A long-lived connection's credentials: it ends with its token.

    auth = await SessionAuth.connect(websocket)      # ?token= or the first frame
    ...
    await auth.watch()        # raises Unauthorized at `exp`, or when revoked
    await auth.renew(token)   # an auth frame: same `sub`, the deadline moves

- **Expiry**: the session ends at the token's `exp`, to the second, with no
  leeway (the HTTP checks' 30 s leeway is for clock skew between requests; a
  session has the server's clock only). `watch` raises `Unauthorized` with code
  `token_expired` then.
- **Renewal**: before that, the client sends a fresh token (`renew`); it must
  verify and carry the same `sub` (else `subject_mismatch`); the deadline is
  then its `exp`, and its groups are the session's from then on.
- **Revocation**: with a verifier that can ask the provider
  (`revocation_check_seconds`, Cognito mode), the current token is verified
  again at that period: `token_revoked` once the pool has revoked it. Local
  HS256 tokens have no provider: they live until `exp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

from starlette.websockets import WebSocket

from .claims import invalid_token
from .dependencies import (
    WEBSOCKET_AUTH_TIMEOUT_SECONDS,
    app_verifier,
    websocket_credentials,
)
from .principal import Principal, TokenVerifier


def expires_at(principal: Principal) -> float:
    """The token's `exp` (every verified token has one)."""
    exp = principal.claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise invalid_token("token is missing the 'exp' claim")
    return float(exp)


class SessionAuth:
    def __init__(
        self,
        verifier: TokenVerifier,
        principal: Principal,
        token: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._clock = clock
        self.principal = principal
        self._token = token
        self.expires_at = expires_at(principal)
        period = getattr(verifier, "revocation_check_seconds", None)
        self.check_seconds: float | None = float(period) if period else None
        self._changed = asyncio.Event()
        if self.expires_at <= clock():
            raise invalid_token("token has expired", code="token_expired")

    @classmethod
    async def connect(
        cls,
        websocket: WebSocket,
        verifier: TokenVerifier | None = None,
        *,
        timeout_seconds: float = WEBSOCKET_AUTH_TIMEOUT_SECONDS,
    ) -> SessionAuth:
        """Authenticate a WebSocket (`authenticate_websocket`) and keep its token."""
        verifier = verifier or app_verifier(websocket.app)
        principal, token = await websocket_credentials(
            websocket, verifier, timeout_seconds=timeout_seconds
        )
        return cls(verifier, principal, token)

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    async def renew(self, token: str) -> Principal:
        """Take a fresh token of the same user; raises `Unauthorized` otherwise
        (the session keeps its current token then)."""
        principal = await self._verifier.verify(token)
        if principal.user_id != self.principal.user_id:
            raise invalid_token("token is of another user", code="subject_mismatch")
        deadline = expires_at(principal)
        if deadline <= self._clock():
            raise invalid_token("token has expired", code="token_expired")
        self.principal, self._token, self.expires_at = principal, token, deadline
        self._changed.set()
        return principal

    async def watch(self) -> None:
        """Return never: raise `Unauthorized` (`token_expired`, `token_revoked`, …)
        when the session must end, or `ServiceUnavailable` when the provider has
        been unreachable for longer than its grace."""
        next_check = self._next_check()
        while True:
            now = self._clock()
            if now >= self.expires_at:
                raise invalid_token("token has expired", code="token_expired")
            if next_check is not None and now >= next_check:
                await self._verifier.verify(self._token)
                next_check = self._next_check()
                continue
            wake = self.expires_at if next_check is None else min(self.expires_at, next_check)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, wake - now))

    def _next_check(self) -> float | None:
        if self.check_seconds is None:
            return None
        # A little jitter, so that a class that joined together does not re-check
        # together; never below the period, so that the cached answer is stale by then.
        return self._clock() + self.check_seconds * random.uniform(1.0, 1.1)
