"""Per-user, per-route rate limits (shared/ratelimit.py): GCRA's burst then
refusals, recovery, per-user and per-route budgets, the settings' language,
and failing open when the store fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prometheus_client import REGISTRY
from pydantic import ValidationError

from shared.budget import Rate
from shared.ratelimit import (
    FirstHere,
    MemoryLimits,
    Policy,
    RateLimiter,
    decide,
    memory_rate_limiter,
    open_rate_limiter,
)
from shared.ratelimit_rules import RateSyntaxError, format_rate, parse_rate, parse_routes
from shared.settings import BelfrySettings

MESSAGES = "/chat/channels/{channel_id}/messages"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(clock: Clock, **settings: Any) -> RateLimiter:
    made = memory_rate_limiter(BelfrySettings(**settings), clock=clock)
    assert made is not None
    return made


async def admitted(limiter: RateLimiter, n: int, user: str, method: str, route: str) -> int:
    """How many of `n` requests at this instant went through before the first refusal."""
    for i in range(n):
        if await limiter.admit(user, method, route) is not None:
            return i
    return n


def refused(method: str, route: str) -> float:
    value = REGISTRY.get_sample_value(
        "belfry_rate_limit_refused_total", {"method": method, "route": route}
    )
    return value or 0.0


def failed_open(reason: str) -> float:
    return REGISTRY.get_sample_value("belfry_rate_limit_failed_open_total", {"reason": reason}) or 0


async def test_a_burst_goes_through_then_requests_are_refused_with_when_to_retry() -> None:
    clock = Clock()
    limits = limiter(clock, rate_limit_routes=f"POST {MESSAGES}=5/s burst 20")
    before = refused("POST", MESSAGES)
    assert await admitted(limits, 100, "carl", "POST", MESSAGES) == 20
    wait = await limits.admit("carl", "POST", MESSAGES)
    assert wait == pytest.approx(0.2, abs=1e-5)  # one interval at 5/s
    assert refused("POST", MESSAGES) == before + 2  # the 21st and this one


async def test_the_budget_recovers_one_request_per_interval() -> None:
    clock = Clock()
    limits = limiter(clock, rate_limit_writes="2/s burst 3")
    assert await admitted(limits, 10, "alice", "POST", "/schedule") == 3
    clock.advance(0.49)
    assert await limits.admit("alice", "POST", "/schedule") == pytest.approx(0.01, abs=1e-5)
    clock.advance(0.01)
    assert await limits.admit("alice", "POST", "/schedule") is None
    assert await limits.admit("alice", "POST", "/schedule") is not None
    clock.advance(10)  # long at rest: the whole burst again, never more
    assert await admitted(limits, 10, "alice", "POST", "/schedule") == 3


async def test_each_user_has_a_budget_of_their_own() -> None:
    clock = Clock()
    limits = limiter(clock, rate_limit_routes=f"POST {MESSAGES}=5/s burst 20")
    assert await admitted(limits, 100, "carl", "POST", MESSAGES) == 20
    assert await admitted(limits, 100, "cora", "POST", MESSAGES) == 20
    assert await limits.admit("carl", "POST", MESSAGES) is not None


async def test_each_route_has_a_budget_and_overrides_apply_to_their_route_only() -> None:
    clock = Clock()
    limits = limiter(
        clock,
        rate_limit_writes="10/s burst 5",
        rate_limit_reads="10/s burst 7",
        rate_limit_routes="POST /schedule=1/s burst 2; GET /rooms=off",
    )
    assert await admitted(limits, 50, "alice", "POST", "/schedule") == 2
    assert await admitted(limits, 50, "alice", "DELETE", "/schedule/{room_id}") == 5
    assert await admitted(limits, 50, "alice", "PATCH", "/schedule/{room_id}") == 5
    assert await admitted(limits, 50, "alice", "GET", "/schedule") == 7
    assert await admitted(limits, 500, "alice", "GET", "/rooms") == 500
    assert await admitted(limits, 50, "alice", "post", "/schedule") == 0  # the same route


async def test_writes_or_reads_can_be_left_unlimited() -> None:
    clock = Clock()
    limits = limiter(clock, rate_limit_reads="off", rate_limit_writes="1/min")
    assert await admitted(limits, 300, "mia", "GET", MESSAGES) == 300
    assert await admitted(limits, 5, "mia", "PUT", "/chat/customers/{customer_id}/manager") == 1
    wait = await limits.admit("mia", "PUT", "/chat/customers/{customer_id}/manager")
    assert wait == pytest.approx(60, abs=1e-5)


def test_gcra_in_one_function() -> None:
    rate = Rate(per_second=4, burst=2)  # interval 0.25, tolerance 0.25
    assert decide(0.0, 100.0, rate) == (100.25, 0.0)
    assert decide(100.25, 100.0, rate) == (100.5, 0.0)
    new, wait = decide(100.5, 100.0, rate)
    assert new is None
    assert wait == pytest.approx(0.25, abs=1e-5)
    assert decide(100.5, 100.3, rate) == (100.75, 0.0)


async def test_memory_budgets_stay_bounded_and_keep_the_busy_ones() -> None:
    limits = MemoryLimits(size=100)
    rate = Rate(per_second=1, burst=1)
    assert await limits.take("busy", now=1000.0, rate=rate) is None
    for n in range(500):  # requests long past: budgets at rest again
        await limits.take(f"old-{n}", now=float(n), rate=rate)
    assert len(limits.tat) <= 100
    assert await limits.take("busy", now=1000.0, rate=rate) is not None


def test_defaults_are_what_docs_say() -> None:
    policy = Policy.from_settings(BelfrySettings())
    assert policy.rate("POST", MESSAGES) == Rate(5, 20)  # DESIGN.md "Limits per client"
    assert policy.rate("POST", "/chat/attachments") == Rate(2, 10)
    assert policy.rate("POST", "/schedule") == Rate(10, 50)
    assert policy.rate("GET", "/rooms") == Rate(50, 100)


def test_the_rate_language() -> None:
    assert parse_rate("10/s burst 20") == (10.0, 20)
    assert parse_rate(" 30 / min ") == (0.5, 1)
    assert parse_rate("7200/h") == (2.0, 2)
    assert parse_rate("2.5/second BURST 4") == (2.5, 4)
    assert parse_rate("OFF") is None
    assert format_rate(parse_rate("10/s burst 20")) == "10/s burst 20"
    assert parse_routes("POST /schedule=2/s burst 10;\n get /rooms/{room_id} = off ;") == {
        ("POST", "/schedule"): (2.0, 10),
        ("GET", "/rooms/{room_id}"): None,
    }
    assert parse_routes("") == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("fast", "a rate looks like '10/s burst 20'"),
        ("10/day", "the unit is one of s, min, h"),
        ("0/s", "above 0"),
        ("10/s burst 0", "the burst must be 1"),
        ("10/s burst", "a rate looks like"),
    ],
)
def test_a_bad_rate_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(RateSyntaxError, match=says):
        parse_rate(text)
    with pytest.raises(ValidationError) as error:
        BelfrySettings(rate_limit_writes=text)
    assert "BELFRY_RATE_LIMIT_WRITES" in str(error.value)
    assert says in str(error.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/schedule=2/s", "an entry is 'METHOD /route/{param}=RATE'"),
        ("POST /schedule", "an entry is"),
        ("FETCH /schedule=2/s", "'FETCH' is not one of"),
        ("POST schedule=2/s", "starts with '/'"),
        ("POST /schedule=2/s;POST /schedule=3/s", "given twice"),
        ("POST /schedule=quick", "'POST /schedule=quick': 'quick': a rate looks like"),
    ],
)
def test_a_bad_route_entry_says_which_and_why(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        BelfrySettings(rate_limit_routes=text)
    assert "BELFRY_RATE_LIMIT_ROUTES" in str(error.value)
    assert says in str(error.value)


def test_settings_travel_to_other_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = BelfrySettings(
        rate_limit_routes="POST /schedule=2/s burst 10", rate_limit_reads="off"
    )
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    again = BelfrySettings()
    assert again.rate_limit_routes == "POST /schedule=2/s burst 10"
    assert again.rate_limit_reads == "off"
    assert Policy.from_settings(again) == Policy.from_settings(settings)


async def test_off_means_no_limiter() -> None:
    settings = BelfrySettings(rate_limit_enabled=False)
    assert memory_rate_limiter(settings) is None
    assert await open_rate_limiter(None, settings) is None  # type: ignore[arg-type]


class Failing:
    def __init__(self, error: BaseException | None = None, delay: float = 0.0) -> None:
        self.error = error
        self.delay = delay

    async def take(self, key: str, *, now: float, rate: Rate) -> float | None:
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return 5.0


async def test_a_failing_store_lets_requests_through_and_counts_them() -> None:
    policy = Policy.from_settings(BelfrySettings())
    throttled = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
        "UpdateItem",
    )
    before = failed_open("ProvisionedThroughputExceededException")
    broken = RateLimiter(Failing(throttled), policy)
    assert await broken.admit("carl", "POST", MESSAGES) is None
    assert await broken.admit("carl", "POST", MESSAGES) is None
    assert failed_open("ProvisionedThroughputExceededException") == before + 2

    before = failed_open("timeout")
    slow = RateLimiter(Failing(delay=5), policy, timeout_seconds=0.05)
    assert await slow.admit("carl", "POST", MESSAGES) is None
    assert failed_open("timeout") == before + 1

    answering = RateLimiter(Failing(), policy)  # the same path, when the store answers
    assert await answering.admit("carl", "POST", MESSAGES) == 5.0


async def test_a_bug_is_not_swallowed_as_a_store_failure() -> None:
    broken = RateLimiter(Failing(KeyError("tat")), Policy.from_settings(BelfrySettings()))
    with pytest.raises(KeyError):
        await broken.admit("carl", "POST", MESSAGES)


class CountingLimits(MemoryLimits):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def take(self, key: str, *, now: float, rate: Rate) -> float | None:
        self.calls += 1
        return await super().take(key, now=now, rate=rate)


async def test_a_key_s_first_request_in_a_while_is_admitted_without_the_shared_store() -> None:
    shared = CountingLimits()
    here = FirstHere(shared, quiet_seconds=60)
    rate = Rate(per_second=1, burst=2)
    assert await here.take("a", now=1000.0, rate=rate) is None  # first: no call
    assert shared.calls == 0
    assert await here.take("b", now=1000.0, rate=rate) is None  # another key's first
    assert shared.calls == 0
    # from the second request on, the shared budget decides (it never saw the first)
    assert await here.take("a", now=1000.1, rate=rate) is None
    assert await here.take("a", now=1000.2, rate=rate) is None
    assert await here.take("a", now=1000.3, rate=rate) is not None
    assert shared.calls == 3
    # a quiet spell: the next one is a first request again
    assert await here.take("a", now=1100.0, rate=rate) is None
    assert shared.calls == 3
