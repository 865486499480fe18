"""The account-wide Chime budget over an in-memory schedule and a clock the
test moves: replicas together never exceed the rate, requests asking together
share one reservation, and what cannot go before its deadline is refused at
once, earliest deadlines first."""

from __future__ import annotations

import asyncio

import pytest

from shared.budget import BudgetExhausted, ChimeBudget, Rate, within


class MemorySchedule:
    """GCRA as `DynamoSchedule` keeps it, in a dict; counts its reservations."""

    def __init__(self) -> None:
        self.tat: dict[str, float] = {}
        self.reservations = 0

    async def reserve(
        self, api: str, *, now: float, rate: Rate, latest: float, count: int = 1
    ) -> list[float] | None:
        self.reservations += 1
        tat = max(self.tat.get(api, 0.0), now)
        first = tat - rate.tolerance
        if first + (count - 1) * rate.interval > latest:
            return None
        self.tat[api] = tat + count * rate.interval
        return [max(now, first + i * rate.interval) for i in range(count)]

    async def earliest(self, api: str, *, now: float, rate: Rate) -> float:
        return max(now, self.tat.get(api, 0.0) - rate.tolerance)


class Clock:
    """Time stands still unless a request waits for its slot: then it moves on."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sent: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def most_in_any_window(times: list[float], width: float) -> int:
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= width - 1e-9:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_replicas_together_keep_to_the_rate_and_burst() -> None:
    schedule = MemorySchedule()
    clock = Clock()
    rate = Rate(per_second=10, burst=20, headroom=3)
    replicas = [
        ChimeBudget(schedule, default=rate, max_wait_seconds=60, clock=clock, sleep=clock.sleep)
        for _ in range(3)
    ]
    sent: list[float] = []

    async def call(budget: ChimeBudget) -> None:
        waited = await budget.acquire("BatchCreateAttendee")
        sent.append(clock.now + waited)

    await asyncio.gather(*(call(b) for b in replicas for _ in range(100)))
    assert len(sent) == 300
    # a burst of 17 (20 less the headroom), then one every tenth of a second
    assert most_in_any_window(sent, 0.001) == rate.burst - 1 - rate.headroom + 1
    for width in (0.5, 1.0, 5.0):
        assert most_in_any_window(sent, width) <= rate.burst - rate.headroom + width * 10
    assert max(sent) - clock.now == pytest.approx((300 - 17) / 10, abs=0.11)


async def test_requests_asking_together_share_one_reservation() -> None:
    schedule = MemorySchedule()
    clock = Clock()
    budget = ChimeBudget(
        schedule, default=Rate(10, 20), max_wait_seconds=60, clock=clock, sleep=clock.sleep
    )
    await asyncio.gather(*(budget.acquire("SendChannelMessage") for _ in range(50)))
    assert schedule.reservations == 1


async def test_past_the_deadline_is_refused_at_once_earliest_deadlines_served_first() -> None:
    schedule = MemorySchedule()
    clock = Clock()
    budget = ChimeBudget(
        schedule, default=Rate(10, 1), max_wait_seconds=60, clock=clock, sleep=clock.sleep
    )

    async def ask(seconds: float) -> float:
        with within(seconds, clock):
            return await budget.acquire("CreateAttendee")

    results = await asyncio.gather(*(ask(0.35) for _ in range(8)), ask(30), return_exceptions=True)
    got = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExhausted)]
    # slots at 0, .1, .2, .3 fit the short deadlines; the long one takes the next
    assert sorted(got) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert len(refused) == 4
    assert all(r.retry_after >= 1 for r in refused)  # Retry-After is whole seconds
    assert schedule.reservations <= 2  # all at once, then the ones that fit


async def test_apis_are_budgeted_apart() -> None:
    schedule = MemorySchedule()
    clock = Clock()
    budget = ChimeBudget(
        schedule,
        default=Rate(1, 1),
        rates={"SendChannelMessage": Rate(100, 50)},
        max_wait_seconds=60,
        clock=clock,
        sleep=clock.sleep,
    )
    assert await budget.acquire("CreateMeeting") == 0
    assert await budget.acquire("SendChannelMessage") == 0
    assert await budget.acquire("CreateMeeting") == pytest.approx(1.0)
