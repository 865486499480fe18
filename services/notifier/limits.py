"""A user's open WebSockets over every replica: at most `limit`, each holding a
lease in `SessionLeases` (DynamoDB, or memory on the in-process bus) that its
replica renews while it is open; the next socket is closed 4429
`too_many_sessions`. A crashed replica's leases expire after `lease_seconds`."""

from __future__ import annotations

import asyncio
import uuid

from shared.logging import get_logger
from shared.metrics import Counter

from .ports import SessionLeases

log = get_logger("belfry.notifier")

CLOSE_TOO_MANY = 4429

LEASE_ERRORS = Counter(
    "belfry_notifier_ws_lease_errors_total",
    "Session-lease store failures (the socket is kept: the cap fails open).",
    ["operation"],
)


class SessionEnded(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class SessionLimit:
    """One session's place among its user's open WebSockets on every replica: a
    lease taken on connect, renewed every third of `lease_seconds`, released on
    close. The store failing never closes a socket (logged, counted)."""

    def __init__(
        self, leases: SessionLeases, user_id: str, *, limit: int, lease_seconds: float
    ) -> None:
        self._leases, self.user_id = leases, user_id
        self.limit, self.lease_seconds = limit, lease_seconds
        self.session_id = uuid.uuid4().hex
        self._held = False

    async def enter(self) -> bool:
        """False: the user already holds `limit` sessions."""
        try:
            self._held = await self._leases.acquire(
                self.user_id, self.session_id, self.limit, self.lease_seconds
            )
        except Exception as exc:
            self._failed("acquire", exc)
            return True
        return self._held

    async def keep(self) -> None:
        """Renew until cancelled; raise `SessionEnded` (4429) if the place is lost
        (it expired, e.g. the store was unreachable) and the user is at the cap."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                renewed = self._held and await self._leases.renew(
                    self.user_id, self.session_id, self.lease_seconds
                )
                if not renewed and not await self.enter():
                    raise SessionEnded(CLOSE_TOO_MANY, "too_many_sessions")
                self._held = True
            except SessionEnded:
                raise
            except Exception as exc:
                self._failed("renew", exc)

    async def leave(self) -> None:
        try:
            await self._leases.release(self.user_id, self.session_id)
        except Exception as exc:  # the lease expires by itself
            self._failed("release", exc)

    def _failed(self, operation: str, exc: Exception) -> None:
        LEASE_ERRORS.labels(operation).inc()
        log.warning("ws.session_lease_failed", operation=operation, error=repr(exc))
