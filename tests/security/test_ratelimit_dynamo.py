"""The rate limiter's budgets in DynamoDB (moto server): two limiters, as two
replicas, draw from one budget per (user, route); items carry a TTL; refusals
this process already knows of cost no call; a store that fails lets requests
through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from shared.aws import AwsClients
from shared.ratelimit import (
    RATE_LIMIT_OWNER,
    RATE_LIMIT_TABLE,
    DynamoLimits,
    Policy,
    RateLimiter,
    open_rate_limiter,
)
from shared.settings import BelfrySettings

MESSAGES = "/chat/channels/{channel_id}/messages"
POLICY = Policy.from_settings(BelfrySettings(rate_limit_routes=f"POST {MESSAGES}=5/s burst 20"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


Replicas = Callable[..., Awaitable[list[RateLimiter]]]


@pytest.fixture
def replicas(aws: AwsClients, test_id: str) -> Replicas:
    """`await replicas(n, clock=...)`: n limiters, each with its own store
    client state, over one table."""

    async def make(
        n: int, *, clock: Clock | None = None, policy: Policy = POLICY
    ) -> list[RateLimiter]:
        settings = BelfrySettings(table_prefix=test_id)
        first = await open_rate_limiter(aws, settings)
        assert first is not None
        table = RATE_LIMIT_TABLE.name(test_id, RATE_LIMIT_OWNER)
        return [
            RateLimiter(
                DynamoLimits(aws.dynamodb, table),
                policy,
                timeout_seconds=10,
                **({"clock": clock} if clock else {}),
            )
            for _ in range(n)
        ]

    return make


def calls(limiter: RateLimiter) -> int:
    assert isinstance(limiter.limits, DynamoLimits)
    return limiter.limits.calls


async def test_two_replicas_share_one_budget_per_user(replicas: Replicas) -> None:
    clock = Clock()
    one, two = await replicas(2, clock=clock)
    answers = [await (one if n % 2 else two).admit("carl", "POST", MESSAGES) for n in range(40)]
    assert answers[:20] == [None] * 20  # the burst, drawn by both together
    assert all(a is not None for a in answers[20:])
    assert answers[20] == pytest.approx(0.2, abs=1e-3)
    # another customer, on either replica, has a whole budget
    assert [await two.admit("cora", "POST", MESSAGES) for _ in range(20)] == [None] * 20
    assert await one.admit("cora", "POST", MESSAGES) is not None

    # one interval on: one more request, whichever replica it reaches; the
    # one that last saw the budget at rest guesses wrong and still gets it right
    clock.now += 0.2
    assert await two.admit("carl", "POST", MESSAGES) is None
    assert await one.admit("carl", "POST", MESSAGES) is not None
    clock.now += 60  # at rest again: the burst, not more
    answers = [await (one if n % 2 else two).admit("carl", "POST", MESSAGES) for n in range(25)]
    assert answers.count(None) == 20


async def test_simultaneous_requests_on_three_replicas_get_exactly_the_burst(
    replicas: Replicas,
) -> None:
    policy = Policy.from_settings(BelfrySettings(rate_limit_writes="1/min burst 10"))
    limiters = await replicas(3, policy=policy)
    answers = await asyncio.gather(
        *(limiter.admit("alice", "POST", "/schedule") for limiter in limiters for _ in range(15))
    )
    assert answers.count(None) == 10
    assert all(a is not None and 0 < a <= 60 for a in answers if a is not None)


async def test_a_refusal_costs_one_call_and_a_known_one_none(replicas: Replicas) -> None:
    clock = Clock()
    (limiter,) = await replicas(1, clock=clock)
    for _ in range(20):
        assert await limiter.admit("carl", "POST", MESSAGES) is None
    assert calls(limiter) == 20  # one write per admitted request
    assert await limiter.admit("carl", "POST", MESSAGES) is not None
    assert calls(limiter) == 20  # this process knew it: no call

    (fresh,) = await replicas(1, clock=clock)  # another replica, which never saw carl
    assert await fresh.admit("carl", "POST", MESSAGES) is not None
    assert calls(fresh) == 1  # the failed condition returned the item
    assert await fresh.admit("carl", "POST", MESSAGES) is not None
    assert calls(fresh) == 1


async def test_items_expire_by_ttl_once_they_say_nothing(
    replicas: Replicas, aws: AwsClients, test_id: str
) -> None:
    clock = Clock()
    (limiter,) = await replicas(1, clock=clock)
    table = RATE_LIMIT_TABLE.name(test_id, RATE_LIMIT_OWNER)
    ttl = await aws.dynamodb.describe_time_to_live(TableName=table)
    assert ttl["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires_at",
    }
    for _ in range(3):
        await limiter.admit("mia", "POST", MESSAGES)
    items = (await aws.dynamodb.scan(TableName=table))["Items"]
    assert len(items) == 1
    tat = float(items[0]["tat"]["N"])
    expires_at = int(items[0]["expires_at"]["N"])
    assert tat == pytest.approx(clock.now + 3 * 0.2, abs=1e-5)
    # after `expires_at` the budget is at rest whatever the item says; no later
    # than the burst's refill plus a second
    assert tat <= expires_at <= clock.now + 20 * 0.2 + 1


async def test_a_store_that_fails_lets_requests_through(aws: AwsClients, test_id: str) -> None:
    def failed_open(reason: str) -> float:
        return (
            REGISTRY.get_sample_value("belfry_rate_limit_failed_open_total", {"reason": reason})
            or 0.0
        )

    before = failed_open("ResourceNotFoundException")
    missing = RateLimiter(DynamoLimits(aws.dynamodb, f"{test_id}-no-such-table"), POLICY)
    assert [await missing.admit("carl", "POST", MESSAGES) for _ in range(30)] == [None] * 30
    assert failed_open("ResourceNotFoundException") == before + 30
