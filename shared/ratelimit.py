"""Per-user, per-route rate limits at the HTTP edge, shared by every replica
(docs/security.md "Rate limits").

Each authenticated request draws from one budget: its user's for its route
(method and route template). The budget is GCRA, as the Chime budget's
(`shared.budget`): one number per (user, route), the theoretical arrival
time `tat`; a request is admitted while `tat - tolerance <= now`, and moves
`tat` on by one interval. Unlike the Chime budget, a request over its limit is
refused at once (the caller answers 429 with `Retry-After`), never queued.

The state lives in DynamoDB (`<prefix>-shared-rate-limits`), so that every
replica draws from one budget; each item carries `expires_at` (DynamoDB TTL),
the moment after which it says no more than a missing item would. Checking
costs one conditional UpdateItem as a rule (see `DynamoLimits`), and a request
this process already knows to be over its limit costs none. A store that fails
or is slow lets the request through (fail open: logged and counted), since a
rate limit must never take the API down with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import AwsClients
from shared.budget import Rate
from shared.clock import Clock
from shared.dynamo import TableSpec, ensure_tables, error_code
from shared.logging import get_logger
from shared.metrics import Counter
from shared.ratelimit_rules import WRITE_METHODS, Limit, parse_rate, parse_routes
from shared.settings import BelfrySettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = get_logger("belfry.ratelimit")

RATE_LIMIT_TABLE = TableSpec("rate-limits", hash_key="key", ttl_attribute="expires_at")
RATE_LIMIT_OWNER = "shared"  # the table is `<prefix>-shared-rate-limits`: every service's

REFUSED = Counter(
    "belfry_rate_limit_refused_total",
    "Requests refused with 429 because their user's budget for the route was spent.",
    ["method", "route"],
)
FAILED_OPEN = Counter(
    "belfry_rate_limit_failed_open_total",
    "Requests let through unchecked because the rate-limit store failed or was slow.",
    ["reason"],
)


class Limits(Protocol):
    """Where the `tat` per key lives: DynamoDB, or a dict (`MemoryLimits`)."""

    async def take(self, key: str, *, now: float, rate: Rate) -> float | None:
        """Take one request of `key`'s budget: None if admitted, else the
        seconds until one would be (nothing taken)."""
        ...


SLACK = 2e-6  # rounding of sums of intervals (and of the 6 decimals stored): not a refusal


def decide(tat: float, now: float, rate: Rate) -> tuple[float | None, float]:
    """GCRA for one request: (the new `tat`, 0) if admitted, (None, seconds to
    wait) if not. `tat` 0 is a budget never used."""
    earliest = tat - rate.tolerance
    if earliest > now + SLACK:
        return None, earliest - now
    return max(tat, now) + rate.interval, 0.0


class _Recent:
    """The last `tat` seen per key, at most `size` keys. A key whose `tat` has
    passed says nothing a missing key would not, so those go first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tat: dict[str, float] = {}

    def get(self, key: str) -> float | None:
        return self._tat.get(key)

    def put(self, key: str, tat: float, now: float) -> None:
        self._tat.pop(key, None)
        self._tat[key] = tat  # the newest last
        if len(self._tat) > self._size:
            self._tat = {k: t for k, t in self._tat.items() if t >= now}
            while len(self._tat) > self._size * 3 // 4:  # still full: the least recent go
                del self._tat[next(iter(self._tat))]

    def __len__(self) -> int:
        return len(self._tat)


class MemoryLimits:
    """The budgets in this process only (the memory bus, unit tests)."""

    def __init__(self, size: int = 100_000) -> None:
        self.tat = _Recent(size)

    async def take(self, key: str, *, now: float, rate: Rate) -> float | None:
        new, wait = decide(self.tat.get(key) or 0.0, now, rate)
        if new is None:
            return wait
        self.tat.put(key, new, now)
        return None


class FirstHere:
    """Shared limits whose key's first request in `quiet_seconds` this process
    admits alone, without asking the shared store: a person's one join at 09:00
    costs DynamoDB nothing, while anyone who keeps sending is checked against
    the shared budget from their second request on. What that gives away is
    bounded: at most one request per replica per key per quiet spell, unseen by
    the shared budget (its sustained rate is the shared one)."""

    def __init__(self, shared: Limits, *, quiet_seconds: float = 60.0, size: int = 100_000) -> None:
        self.shared = shared
        self.quiet = quiet_seconds
        self.seen = _Recent(size)  # key -> when this process last saw it

    async def take(self, key: str, *, now: float, rate: Rate) -> float | None:
        last = self.seen.get(key)
        self.seen.put(key, now, now - self.quiet)  # when full, the quiet ones go first
        if last is None or now - last > self.quiet:
            return None
        return await self.shared.take(key, now=now, rate=rate)


class Contended(Exception):
    """Other replicas moved the key's `tat` between every attempt of ours."""


class DynamoLimits:
    """The budgets in DynamoDB, one item per key (`key`, `tat`, `expires_at`).

    A budget at rest (`tat` in the past, or no item) is taken with `SET tat =
    now + interval`, a busy one with `SET tat = tat + interval`, each under the
    condition that says it applies; which one to try first this process guesses
    from the `tat` it last saw. A failed condition returns the item as it is
    (`ReturnValuesOnConditionCheckFailure`), so a refusal costs that one call,
    and a wrong guess one more write. `tat` never goes back, so a request that
    the last seen `tat` already refuses is refused without a call."""

    def __init__(
        self, client: DynamoDBClient, table: str, *, attempts: int = 4, remember: int = 100_000
    ) -> None:
        self._client = client
        self.table = table
        self._attempts = attempts
        self.seen = _Recent(remember)
        self.calls = 0  # UpdateItem calls made (tests, and a figure to reason with)

    async def take(self, key: str, *, now: float, rate: Rate) -> float | None:
        seen = self.seen.get(key)
        if seen is not None:
            new, wait = decide(seen, now, rate)
            if new is None:
                return wait
        at_rest = seen is None or seen < now
        for _ in range(self._attempts):
            taken, tat = await self._update(key, now=now, rate=rate, at_rest=at_rest)
            self.seen.put(key, tat, now)
            if taken:
                return None
            new, wait = decide(tat, now, rate)
            if new is None:
                return wait
            at_rest = tat < now  # the guess was wrong: the other write applies
        raise Contended(key)

    async def _update(
        self, key: str, *, now: float, rate: Rate, at_rest: bool
    ) -> tuple[bool, float]:
        """(True, the new `tat`) if taken; (False, the item's `tat`, 0 if none)
        if the condition of the guess did not hold."""
        latest = now + rate.tolerance + SLACK  # the latest `tat` that still admits
        expires = math.ceil(latest + rate.interval)  # no `tat` this write sets is later
        if at_rest:
            values = {
                ":next": _n(now + rate.interval),
                ":now": _n(now),
                ":exp": {"N": str(expires)},
            }
            update = "SET tat = :next, expires_at = :exp"
            condition = "attribute_not_exists(tat) OR tat < :now"
        else:
            values = {":i": _n(rate.interval), ":now": _n(now), ":latest": _n(latest)}
            values[":exp"] = {"N": str(expires)}
            update = "SET tat = tat + :i, expires_at = :exp"
            condition = "tat >= :now AND tat <= :latest"
        self.calls += 1
        try:
            response = await self._client.update_item(
                TableName=self.table,
                Key={"key": {"S": key}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            item: Mapping[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]
            return False, float(item.get("tat", {}).get("N", 0))
        return True, float(response["Attributes"]["tat"]["N"])


def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}


@dataclass(frozen=True)
class Policy:
    """Which rate applies to a request: the route's own, else the default of
    writes or of reads. None: the route is not limited."""

    writes: Rate | None
    reads: Rate | None
    routes: Mapping[tuple[str, str], Rate | None]

    @classmethod
    def from_settings(cls, settings: BelfrySettings) -> Policy:
        return cls(
            writes=_rate(parse_rate(settings.rate_limit_writes)),
            reads=_rate(parse_rate(settings.rate_limit_reads)),
            routes={
                where: _rate(limit)
                for where, limit in parse_routes(settings.rate_limit_routes).items()
            },
        )

    def rate(self, method: str, route: str) -> Rate | None:
        method = method.upper()
        if (method, route) in self.routes:
            return self.routes[method, route]
        return self.writes if method in WRITE_METHODS else self.reads


def _rate(limit: Limit | None) -> Rate | None:
    return None if limit is None else Rate(*limit)


class RateLimiter:
    """`await limiter.admit(user_id, method, route)`: None to go on, else the
    seconds to put in `Retry-After` (the caller answers 429 `rate_limited`)."""

    def __init__(
        self,
        limits: Limits,
        policy: Policy,
        *,
        timeout_seconds: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self._timeout = timeout_seconds
        self._clock = clock
        self._quiet_until = 0.0  # fail-open warnings: one per `_QUIET` seconds

    async def admit(self, user_id: str, method: str, route: str) -> float | None:
        rate = self.policy.rate(method, route)
        if rate is None:
            return None
        method = method.upper()
        key = f"{user_id}\x1f{method} {route}"
        if len(key) > _LONGEST_KEY:  # DynamoDB keys end at 2048 bytes
            key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        try:
            async with asyncio.timeout(self._timeout):
                wait = await self.limits.take(key, now=self._clock(), rate=rate)
        except (ClientError, BotoCoreError, OSError, TimeoutError, Contended) as exc:
            self._failed_open(exc, method, route)
            return None
        if wait is None:
            return None
        REFUSED.labels(method, route).inc()
        return max(wait, 0.001)

    def _failed_open(self, exc: Exception, method: str, route: str) -> None:
        reason = (
            "timeout"
            if isinstance(exc, TimeoutError)
            else "contended"
            if isinstance(exc, Contended)
            else (error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__)
        )
        FAILED_OPEN.labels(reason or "error").inc()
        now = time.monotonic()
        if now >= self._quiet_until:
            self._quiet_until = now + _QUIET
            log.warning(
                "ratelimit.failed_open", reason=reason, method=method, route=route, error=repr(exc)
            )


_QUIET = 10.0
_LONGEST_KEY = 512


def memory_rate_limiter(
    settings: BelfrySettings, *, clock: Clock = time.time
) -> RateLimiter | None:
    """A limiter whose budgets live in this process (None: rate limits are off)."""
    if not settings.rate_limit_enabled:
        return None
    return RateLimiter(
        MemoryLimits(),
        Policy.from_settings(settings),
        timeout_seconds=settings.rate_limit_timeout_seconds,
        clock=clock,
    )


async def open_rate_limiter(aws: AwsClients, settings: BelfrySettings) -> RateLimiter | None:
    """The process's limiter over the shared DynamoDB table, created if missing
    (None: rate limits are off)."""
    if not settings.rate_limit_enabled:
        return None
    names = await ensure_tables(
        aws.dynamodb, settings.table_prefix, RATE_LIMIT_OWNER, [RATE_LIMIT_TABLE]
    )
    limiter = RateLimiter(
        FirstHere(DynamoLimits(aws.dynamodb, names[RATE_LIMIT_TABLE.suffix])),
        Policy.from_settings(settings),
        timeout_seconds=settings.rate_limit_timeout_seconds,
    )
    log.info(
        "ratelimit.ready",
        writes=settings.rate_limit_writes,
        reads=settings.rate_limit_reads,
        routes=settings.rate_limit_routes,
    )
    return limiter
