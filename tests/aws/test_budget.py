"""The account-wide Chime budget: one schedule in DynamoDB (moto server) that
several replicas draw from, never exceeding the rate together; refusals past
the deadline; and the hook on a real aiobotocore client."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from botocore.exceptions import ClientError

from shared.aws import AwsClients
from shared.budget import (
    BUDGET_OWNER,
    BUDGET_TABLE,
    BudgetExhausted,
    ChimeBudget,
    DynamoSchedule,
    Rate,
    within,
)
from shared.dynamo import ensure_tables


@pytest.fixture
async def schedule(aws: AwsClients, test_id: str) -> DynamoSchedule:
    names = await ensure_tables(aws.dynamodb, test_id, BUDGET_OWNER, [BUDGET_TABLE])
    return DynamoSchedule(aws.dynamodb, names[BUDGET_TABLE.suffix])


def most_in_any_window(times: list[float], width: float) -> int:
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= width:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_replicas_together_never_exceed_the_rate(schedule: DynamoSchedule) -> None:
    rate = Rate(per_second=40, burst=6)
    replicas = [ChimeBudget(schedule, default=rate, max_wait_seconds=30) for _ in range(3)]
    sent: list[float] = []

    async def call(budget: ChimeBudget) -> None:
        await budget.acquire("BatchCreateAttendee")
        sent.append(time.time())

    started = time.time()
    await asyncio.gather(*(call(b) for b in replicas for _ in range(30)))
    elapsed = time.time() - started
    assert len(sent) == 90
    # 90 requests at 40/s with a burst of 6: no less than (90 - 6) / 40 s
    assert elapsed >= (90 - rate.burst) / rate.per_second * 0.95
    # any second holds at most burst + rate requests (a little slack for timers)
    assert most_in_any_window(sent, 1.0) <= rate.burst + rate.per_second + 1
    assert most_in_any_window(sent, 0.1) <= rate.burst + 4 + 1


async def test_apis_have_budgets_of_their_own(schedule: DynamoSchedule) -> None:
    budget = ChimeBudget(
        schedule,
        default=Rate(per_second=1, burst=1),
        rates={"SendChannelMessage": Rate(per_second=1000, burst=50)},
        max_wait_seconds=5,
    )
    waits = [await budget.acquire("SendChannelMessage") for _ in range(20)]
    assert max(waits) < 0.5
    assert await budget.acquire("CreateMeeting") == 0  # the first of another API


async def test_a_request_whose_slot_is_past_its_deadline_is_refused_at_once(
    schedule: DynamoSchedule,
) -> None:
    budget = ChimeBudget(schedule, default=Rate(per_second=2, burst=1), max_wait_seconds=30)
    await budget.acquire("CreateAttendee")  # takes the only slot of this half second
    started = time.monotonic()
    with within(0.1), pytest.raises(BudgetExhausted) as refused:
        await budget.acquire("CreateAttendee")
    assert time.monotonic() - started < 0.4  # not after waiting
    assert refused.value.retry_after >= 0.5 - 0.2
    with within(2):  # a longer deadline waits for the slot instead
        assert await budget.acquire("CreateAttendee") > 0.2


async def test_every_attempt_of_a_chime_client_takes_a_slot(
    schedule: DynamoSchedule, chime_url: str
) -> None:
    from aiobotocore.session import get_session

    budget = ChimeBudget(schedule, default=Rate(per_second=5, burst=1), max_wait_seconds=10)
    async with get_session().create_client(
        "chime-sdk-meetings",
        endpoint_url=chime_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        budget.install(client, "chime-sdk-meetings")
        started = time.monotonic()
        for n in range(4):
            with contextlib.suppress(ClientError):  # no such meeting: an answer all the same
                await client.get_meeting(MeetingId=f"00000000-0000-0000-0000-00000000000{n}")
        elapsed = time.monotonic() - started
    # three waits of a fifth of a second (the first goes at once)
    assert elapsed >= 3 * 0.2 * 0.9
