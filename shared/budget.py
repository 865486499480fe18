"""One account-wide Chime request budget per API, shared by every replica of
every service (DESIGN.md "Rush hour").

Chime limits each API per account (default 10 requests/s, burst 20). Every
Chime request Belfry sends, retries included, first takes a slot in that API's
schedule, which lives in DynamoDB so that all processes draw from one budget.
The schedule is GCRA (the generic cell rate algorithm): one number per API,
the theoretical arrival time `tat`; a request may go at `tat - tolerance`, and
taking a slot moves `tat` on by one interval. A request *reserves* its slot,
possibly in the future, and waits for it, so no request is sent only to be
throttled; one whose slot lies beyond its deadline is refused at once
(`BudgetExhausted`, with when to retry). The deadline comes from the request
being served (`within(seconds)`), else the configured longest wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from shared.aws import AwsClients
from shared.batching import Coalescer
from shared.clock import Clock
from shared.dynamo import TableSpec, conditional, ensure_tables, error_code
from shared.errors import ServiceUnavailable
from shared.logging import get_logger
from shared.metrics import Counter, Histogram
from shared.settings import BelfrySettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = get_logger("belfry.budget")

BUDGET_TABLE = TableSpec("chime-budget", hash_key="api")
BUDGET_OWNER = "shared"  # the table is `<prefix>-shared-chime-budget`: every service's

WAIT_SECONDS = Histogram(
    "belfry_chime_budget_wait_seconds",
    "How long a Chime request waited for its slot in the account-wide budget.",
    ["api"],
    buckets=(0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30),
)
EXHAUSTED = Counter(
    "belfry_chime_budget_exhausted_total",
    "Chime requests refused before sending: no slot before their deadline.",
    ["api"],
)
THROTTLED = Counter(
    "belfry_chime_throttled_total",
    "Chime throttling answers seen despite the budget (another client on the account).",
    ["api"],
)
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "ThrottledClientException", "TooManyRequestsException"}
)


class BudgetExhausted(Exception):
    """No slot for this Chime API before the deadline; try again after `retry_after`."""

    def __init__(self, api: str, retry_after: float) -> None:
        super().__init__(f"no Chime budget for {api} before the deadline")
        self.api = api
        self.retry_after = max(1.0, retry_after)


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int
    headroom: int = 0  # requests of the burst kept back (see `tolerance`)

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        """How far ahead of the schedule a request may go: the burst less the
        headroom. Chime's bucket is full at rest and cannot fill beyond; a burst
        that leaves late (a busy event loop, the network) loses the refill of
        that delay, and requests on time after it would be throttled: the
        headroom covers such delays, `headroom / per_second` seconds of them."""
        return max(0, self.burst - 1 - self.headroom) * self.interval


class Schedule(Protocol):
    """Where the budget's `tat` per API lives (DynamoDB; a dict in unit tests)."""

    async def reserve(
        self, api: str, *, now: float, rate: Rate, latest: float, count: int = 1
    ) -> list[float] | None:
        """The times `count` requests may go, at or after `now`, having taken
        those slots; None (nothing taken) when the last would be after `latest`."""
        ...

    async def earliest(self, api: str, *, now: float, rate: Rate) -> float:
        """When the next slot would be, without taking it."""
        ...


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "chime_budget_deadline", default=None
)


@contextlib.contextmanager
def within(seconds: float, clock: Clock = time.time) -> Iterator[float]:
    """Chime requests made inside wait for budget at most until now + `seconds`."""
    deadline = clock() + seconds
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def until(deadline: float) -> Iterator[None]:
    """Like `within`, with an absolute deadline (a batch of several requests'
    work takes the earliest of theirs)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


class ChimeBudget:
    def __init__(
        self,
        schedule: Schedule,
        *,
        default: Rate,
        rates: Mapping[str, Rate] | None = None,
        max_wait_seconds: float = 10.0,
        clock: Clock = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._schedule = schedule
        self._default = default
        self._rates = dict(rates or {})
        self._max_wait = max_wait_seconds
        self._clock = clock
        self._sleep = sleep
        # Requests of one API that ask at the same moment take their slots in
        # one reservation (one DynamoDB call for all of them).
        self._asks: Coalescer[str, _Ask, float] = Coalescer(self._reserve, window=0, max_batch=100)

    def rate(self, api: str) -> Rate:
        return self._rates.get(api, self._default)

    async def acquire(self, api: str) -> float:
        """Wait for a slot of `api`; the seconds waited. `BudgetExhausted` when
        none is free before the deadline."""
        deadline = _deadline.get()
        latest = self._clock() + self._max_wait if deadline is None else deadline
        slot = await self._asks.submit(api, _Ask(latest))
        wait = max(0.0, slot - self._clock())
        WAIT_SECONDS.labels(api).observe(wait)
        if wait:
            await self._sleep(wait)
        return wait

    async def _reserve(self, api: str, asks: list[_Ask]) -> dict[_Ask, float | BaseException]:
        now = self._clock()
        rate = self.rate(api)
        latest = min(a.latest for a in asks)
        slots = await self._schedule.reserve(
            api, now=now, rate=rate, latest=latest, count=len(asks)
        )
        if slots is not None:
            return dict(zip(asks, slots, strict=True))
        # Not all of them in time: the free slots go to the asks in order of
        # their deadlines, each ask that its slot would miss is skipped; those
        # are refused at once (one read, one reservation, whatever their number).
        first = await self._schedule.earliest(api, now=now, rate=rate)
        taken: list[_Ask] = []
        for ask in sorted(asks, key=lambda a: a.latest):
            if first + len(taken) * rate.interval <= ask.latest:
                taken.append(ask)
        fits = len(taken)
        slots = None
        if taken:
            slots = await self._schedule.reserve(
                api, now=now, rate=rate, latest=taken[-1].latest, count=len(taken)
            )
        results: dict[_Ask, float | BaseException] = {}
        if slots is not None:
            results.update(zip(taken, slots, strict=True))
        for ask in asks:
            if ask not in results:
                EXHAUSTED.labels(api).inc()
                results[ask] = BudgetExhausted(api, first + fits * rate.interval - now)
        return results

    def install(self, client: Any, service: str) -> None:
        """Make every request of an aiobotocore Chime client (each attempt) take
        its slot first, and count the throttles that still happen."""

        async def before_send(event_name: str = "", **_: Any) -> None:
            await self.acquire(event_name.rsplit(".", 1)[-1])

        client.meta.events.register(f"before-send.{service}", before_send)
        client.meta.events.register(f"needs-retry.{service}", _count_throttles)


@dataclass(eq=False)
class _Ask:
    latest: float  # the last moment this request may go


def _count_throttles(response: Any = None, operation: Any = None, **_: Any) -> None:
    """Every attempt botocore got a throttling answer for (it asks after each)."""
    if response is None or operation is None:
        return
    code = response[1].get("Error", {}).get("Code")
    if code in THROTTLE_CODES:
        THROTTLED.labels(operation.name).inc()


class DynamoSchedule:
    """The GCRA schedule in DynamoDB: one item per API (`api`, `tat`).

    Busy: one conditional UpdateItem (`tat += interval` while `tat` is between
    now and the latest acceptable); idle: one conditional update to `now +
    interval`. Each process tries first what worked last time, so a
    reservation is one call as a rule; only a refusal reads the item."""

    def __init__(self, client: DynamoDBClient, table: str, *, attempts: int = 8) -> None:
        self._client = client
        self.table = table
        self._attempts = attempts
        self._tat: dict[str, float] = {}  # the API's `tat` as this process last saw it

    async def reserve(
        self, api: str, *, now: float, rate: Rate, latest: float, count: int = 1
    ) -> list[float] | None:
        for _ in range(self._attempts):
            # guess from the `tat` last seen here (other replicas may have moved
            # it since): one call either way, as a rule
            idle_first = now > self._tat.get(api, 0.0)
            for idle in (idle_first, not idle_first):
                take = self._take_idle if idle else self._take_next
                first = await take(api, now=now, rate=rate, latest=latest, count=count)
                if first is not None:
                    return [max(now, first + i * rate.interval) for i in range(count)]
            last_allowed = latest + rate.tolerance - (count - 1) * rate.interval
            if await self._read_tat(api) > last_allowed:
                return None
            # another replica moved `tat` between our two writes: again
        return None

    async def _take_next(
        self, api: str, *, now: float, rate: Rate, latest: float, count: int
    ) -> float | None:
        """Busy: the next `count` slots after `tat`, if the last is due before
        `latest`; the first one's time (unclamped)."""
        span = count * rate.interval
        try:
            response = await self._client.update_item(
                TableName=self.table,
                Key={"api": {"S": api}},
                UpdateExpression="SET tat = tat + :span",
                ConditionExpression="tat >= :now AND tat <= :limit",
                ExpressionAttributeValues={
                    ":span": _n(span),
                    ":now": _n(now),
                    ":limit": _n(latest + rate.tolerance - (count - 1) * rate.interval),
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return None
        tat = self._tat[api] = float(response["Attributes"]["tat"]["N"])
        return tat - span - rate.tolerance

    async def _take_idle(
        self, api: str, *, now: float, rate: Rate, latest: float, count: int
    ) -> float | None:
        """Idle (`tat` in the past, or never set): slots from now, `tat` moved
        `count` intervals on; the first one's time (unclamped)."""
        if (count - 1) * rate.interval - rate.tolerance > latest - now:
            return None
        taken = await conditional(
            self._client.update_item(
                TableName=self.table,
                Key={"api": {"S": api}},
                UpdateExpression="SET tat = :next",
                ConditionExpression="attribute_not_exists(tat) OR tat < :now",
                ExpressionAttributeValues={
                    ":next": _n(now + count * rate.interval),
                    ":now": _n(now),
                },
            )
        )
        if not taken:
            return None
        self._tat[api] = now + count * rate.interval
        return now - rate.tolerance

    async def earliest(self, api: str, *, now: float, rate: Rate) -> float:
        return max(now, await self._read_tat(api) - rate.tolerance)

    async def _read_tat(self, api: str) -> float:
        response = await self._client.get_item(
            TableName=self.table, Key={"api": {"S": api}}, ConsistentRead=True
        )
        tat = self._tat[api] = float(response.get("Item", {}).get("tat", {}).get("N", 0))
        return tat


def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}


async def open_budget(aws: AwsClients, settings: BelfrySettings) -> ChimeBudget | None:
    """The process's budget, installed on every Chime client it opened (None:
    no Chime client, or the budget is off)."""
    chime = [name for name in aws.opened if name.startswith("chime")]
    if not chime or not settings.chime_rate_enabled:
        return None
    names = await ensure_tables(aws.dynamodb, settings.table_prefix, BUDGET_OWNER, [BUDGET_TABLE])
    default = (settings.chime_rate_per_second, settings.chime_rate_burst)
    headroom = settings.chime_rate_headroom
    budget = ChimeBudget(
        DynamoSchedule(aws.dynamodb, names[BUDGET_TABLE.suffix]),
        default=Rate(*default, headroom),
        rates={
            api: Rate(rate, burst, headroom)
            for api, (rate, burst) in settings.chime_rate_operations.items()
        },
        max_wait_seconds=settings.chime_rate_max_wait_seconds,
    )
    for name in chime:
        budget.install(aws.client(name), name)
    log.info("budget.installed", services=chime, rate=settings.chime_rate_per_second)
    return budget


def chime_busy(exc: BudgetExhausted) -> ServiceUnavailable:
    """What a request answers when Chime's budget has no slot before its deadline."""
    return ServiceUnavailable(
        "Chime is busy right now, try again shortly",
        retry_after_seconds=math.ceil(exc.retry_after),
        code="chime_busy",
    )
