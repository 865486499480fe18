"""Chime at its default rate limit (10/s, burst 20 per API) with 10 % injected
5xx: joins succeed or answer 503 with Retry-After, never a 500 and never a
second live meeting for a room; the account-wide budget keeps Belfry from
being throttled at all. Throttling that still happens (a tighter limit than
the budget knows) and 5xx are retried by the client."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.rooms.conftest import Rooms

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

ROOMS = 20
JOINS_PER_ROOM = 10


async def test_chime_5xx_and_throttling_are_retried_by_the_client(rooms: Rooms) -> None:
    room_id = await rooms.activate()
    assert (await rooms.join(room_id, "first")).status_code == 200
    await rooms.chime.set_faults(
        seed=3, operations={"BatchCreateAttendee": {"share": 0.4, "statuses": [500, 503]}}
    )
    answers = [await rooms.join(room_id, f"user-{n}") for n in range(8)]
    assert [a.status_code for a in answers] == [200] * 8
    await rooms.chime.clear_faults()
    # a limit tighter than the budget's (another client on the account)
    await rooms.chime.set_limits(operations={"BatchCreateAttendee": {"rate": 5, "burst": 1}})
    answers = [await rooms.join(room_id, f"burst-{n}") for n in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    counters = await rooms.chime.counters()
    assert counters["faulted"]["BatchCreateAttendee"] > 0
    assert counters["throttled"]["BatchCreateAttendee"] > 0
    assert counters["succeeded"]["BatchCreateAttendee"] == 12


async def test_throttled_and_failing_chime_gives_200_or_503_and_one_meeting_per_room(
    rooms: Rooms,
) -> None:
    room_ids = [await rooms.activate() for _ in range(ROOMS)]
    await rooms.chime.set_limits(default={"rate": 10, "burst": 20})
    await rooms.chime.set_faults(seed=7, default={"share": 0.1, "statuses": [500, 503]})

    calls = [
        rooms.join(room_id, f"user-{n}") for n in range(JOINS_PER_ROOM) for room_id in room_ids
    ]
    responses = await asyncio.gather(*calls)

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] > 0
    for response in responses:
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["code"] in (
                "meeting_service_unavailable",
                "meeting_starting",
                "chime_busy",
            )

    counters = await rooms.chime.counters()
    assert counters["throttled"] == {}, counters["throttled"]  # the budget kept us within
    assert counters["faulted"], counters
    await rooms.chime.clear_limits()
    await rooms.chime.clear_faults()
    per_room = Counter(m["ExternalMeetingId"] for m in await rooms.chime.live_meetings())
    assert max(per_room.values()) == 1
    assert set(per_room) <= set(room_ids)
    # Every meeting a joiner was handed is the one its room still records.
    for response in responses:
        if response.status_code == 200:
            body = response.json()
            room = await rooms.room(body["Meeting"]["ExternalMeetingId"])
            assert room is not None
            assert room.meeting_id == body["Meeting"]["MeetingId"]
