"""Is a signature-valid Cognito access token still alive? Ask the user pool.

A token signed out (`GlobalSignOut`, `AdminUserGlobalSignOut`) or revoked
(`RevokeToken` of its refresh token) keeps a valid signature until its `exp`;
only the pool knows. `GetUser` with the access token answers that: 200 while it
lives, `NotAuthorizedException` once it is revoked (moto: the token is dropped
from the pool's `access_tokens`), `UserNotFoundException` for a deleted user.

- **Cached per token** for `check_seconds` (a verdict "revoked" for good), and
  concurrent checks of one token share one call: a client that sends 50
  requests a minute costs one `GetUser` a minute; a class of 1,000 that joins
  at once costs 1,000 calls once, then 1,000 a minute while their sockets stay
  open (each re-checks once per period), at most `concurrency` at a time.
- **The pool unreachable** (network error, timeout, 5xx, throttling): for up to
  `outage_grace_seconds` since the last answer from the pool, signature-valid
  tokens are accepted unchecked (a warning, `belfry_auth_revocation_checks_total
  {outcome="unchecked"}`); after that they are refused with 503
  `auth_unavailable`. After a failure, no call is made for `retry_seconds`, so an
  outage does not add a timeout to every request.
- The token is never logged; the cache holds SHA-256 digests, not tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import httpx

from shared.errors import ServiceUnavailable
from shared.logging import get_logger
from shared.metrics import Counter

from .claims import invalid_token

log = get_logger(__name__)

GET_USER: Final = "AWSCognitoIdentityProviderService.GetUser"
REVOKED_ERRORS: Final = frozenset({"NotAuthorizedException", "UserNotFoundException"})

CHECKS = Counter(
    "belfry_auth_revocation_checks_total",
    "Revocation checks of access tokens by outcome: ok, revoked (answered by the pool), "
    "cached, unchecked (pool unreachable, accepted), unavailable (refused).",
    ["outcome"],
)


class PoolUnreachable(Exception):
    pass


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RevocationChecker:
    def __init__(
        self,
        endpoint: str,
        *,
        check_seconds: float = 60.0,
        outage_grace_seconds: float = 300.0,
        timeout_seconds: float = 3.0,
        retry_seconds: float = 5.0,
        concurrency: int = 32,
        max_entries: int = 100_000,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if check_seconds <= 0:
            raise ValueError("check_seconds must be positive")
        self.endpoint = endpoint
        self.check_seconds = check_seconds
        self._grace = outage_grace_seconds
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._limit = asyncio.Semaphore(concurrency)
        self._max_entries = max_entries
        self._http = http_client
        self._clock = clock
        # digest → (alive, checked at); oldest first
        self._verdicts: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[bool]] = {}
        self._last_answer = clock()  # an outage is counted from here
        self._quiet_until = float("-inf")

    async def check(self, token: str) -> None:
        """Return if the token is alive (or the pool is briefly unreachable);
        raise 401 `token_revoked`, or 503 `auth_unavailable`."""
        digest = token_digest(token)
        now = self._clock()
        cached = self._verdicts.get(digest)
        if cached is not None and (not cached[0] or now - cached[1] < self.check_seconds):
            CHECKS.labels("cached").inc()
            alive = cached[0]
        else:
            try:
                alive = await self._shared_ask(digest, token)
            except PoolUnreachable:
                self._unchecked()
                return
        if not alive:
            raise invalid_token("token was revoked or signed out", code="token_revoked")

    def _unchecked(self) -> None:
        down_for = self._clock() - self._last_answer
        if down_for <= self._grace:
            CHECKS.labels("unchecked").inc()
            return
        CHECKS.labels("unavailable").inc()
        raise ServiceUnavailable(
            "cannot check the token with the user pool right now",
            code="auth_unavailable",
            retry_after_seconds=max(1, round(self._retry)),
        )

    async def _shared_ask(self, digest: str, token: str) -> bool:
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            alive = await self._ask(token)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._inflight[digest]
        future.set_result(alive)
        self._remember(digest, alive)
        return alive

    def _remember(self, digest: str, alive: bool) -> None:
        self._verdicts[digest] = (alive, self._clock())
        self._verdicts.move_to_end(digest)
        while len(self._verdicts) > self._max_entries:
            self._verdicts.popitem(last=False)

    async def _ask(self, token: str) -> bool:
        if self._clock() < self._quiet_until:
            raise PoolUnreachable
        async with self._limit:
            try:
                response = await self._post(token)
            except httpx.HTTPError as exc:
                self._failed(f"{type(exc).__name__}")
                raise PoolUnreachable from None
        kind = _error_type(response)
        if response.status_code == 200:
            outcome = True
        elif response.status_code == 400 and kind in REVOKED_ERRORS:
            outcome = False
        else:
            self._failed(f"{response.status_code} {kind}".strip())
            raise PoolUnreachable
        self._last_answer = self._clock()
        CHECKS.labels("ok" if outcome else "revoked").inc()
        return outcome

    def _failed(self, error: str) -> None:
        now = self._clock()
        self._quiet_until = now + self._retry
        log.warning(
            "auth.revocation.pool_unreachable",
            endpoint=self.endpoint,
            error=error,
            down_for_seconds=round(now - self._last_answer, 1),
            grace_seconds=self._grace,
        )

    async def _post(self, token: str) -> httpx.Response:
        body = {"AccessToken": token}
        headers = {"content-type": "application/x-amz-json-1.1", "x-amz-target": GET_USER}
        if self._http is None:  # one client for the process: its connections are reused
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return await self._http.post(
            self.endpoint, json=body, headers=headers, timeout=self._timeout
        )


def _error_type(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    kind = str(body.get("__type", "")) if isinstance(body, dict) else ""
    return kind.rpartition("#")[2]  # "com.amazonaws…#NotAuthorizedException" too
