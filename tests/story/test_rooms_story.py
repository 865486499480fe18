"""The rooms product end to end: the scheduler and rooms in one app over real
RabbitMQ, moto server and the Chime emulator, from an admin scheduling a room
to its end.

One clock (a wall clock the test can move) drives the scheduler and rooms'
joins, so the room's end (a minute at least) comes without waiting for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulators.chime.control import EmulatorControl
from services.rooms.bootstrap import build as build_rooms
from services.rooms.bootstrap import definition as rooms_definition
from services.rooms.settings import RoomsSettings
from services.scheduler.bootstrap import build as build_scheduler
from services.scheduler.bootstrap import definition as scheduler_definition
from services.scheduler.settings import SchedulerSettings
from shared.auth import mint_local_token
from shared.service import create_platform_app
from tests.scheduler.conftest import EventProbe, MovableClock
from tests.support import drop_topology, isolated, lifespan_client, wait_until

pytestmark = pytest.mark.amqp


@pytest.fixture
def settings(amqp_url: str, moto_url: str, chime_url: str) -> dict[str, Any]:
    return {
        **isolated(),
        "amqp_url": amqp_url,
        "aws_endpoint_url": moto_url,
        "chime_endpoint_url": chime_url,
        "retry_delays_seconds": (0.05, 0.2),
        "log_level": "WARNING",
    }


@pytest.fixture
async def platform(
    settings: dict[str, Any], chime: EmulatorControl
) -> AsyncIterator[tuple[Any, MovableClock, EventProbe]]:
    clock = MovableClock()
    scheduler = SchedulerSettings(**settings, scheduler_tick_seconds=0.1)
    rooms = RoomsSettings(**settings)
    timed = dataclasses.replace(
        scheduler_definition, build=functools.partial(build_scheduler, clock=clock)
    )
    # rooms' join window runs on the same time
    timed_rooms = dataclasses.replace(
        rooms_definition, build=functools.partial(build_rooms, clock=clock)
    )
    app = create_platform_app(
        [timed, timed_rooms], settings={"scheduler": scheduler, "rooms": rooms}
    )
    probe = EventProbe(scheduler, clock)
    await probe.bus.start()
    try:
        async with lifespan_client(app) as client:
            yield client, clock, probe
    finally:
        await probe.bus.stop(2)
        await drop_topology(scheduler, "probe.schedule")


def bearer(settings: dict[str, Any], user: str, *groups: str) -> dict[str, str]:
    token = mint_local_token(SchedulerSettings(**settings), user, list(groups or ("customer",)))
    return {"authorization": f"Bearer {token}"}


async def test_a_scheduled_room_from_activation_to_its_end(
    platform, settings: dict[str, Any], chime: EmulatorControl
) -> None:
    client, clock, probe = platform
    admin = bearer(settings, "ada", "admin")
    viewer = bearer(settings, "viewer")

    # an admin schedules a room two seconds ahead
    start_at = int(clock()) + 2
    created = await client.post(
        "/schedule",
        headers=admin,
        json={
            "title": "Story time",
            "start_at": start_at,
            "duration_minutes": 1,
            "topic": "end to end",
            "media_region": "eu-west-2",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    room_id = created.json()["room_id"]
    early = await client.post(f"/rooms/{room_id}/join", headers=viewer)
    assert early.status_code in (404, 409), early.text  # not active yet

    # it is activated on time and listed on the landing page
    [(arrived, _)] = await probe.wait_for("RoomActivated", room_id, timeout=10)
    assert start_at <= arrived < start_at + 1

    async def listed() -> bool:
        page = (await client.get("/rooms", headers=viewer)).json()
        return any(r["room_id"] == room_id for r in page["rooms"])

    await wait_until(listed, timeout=10, message="the room on GET /rooms")
    [room] = (await client.get("/rooms", headers=viewer)).json()["rooms"]
    assert (room["title"], room["media_region"]) == ("Story time", "eu-west-2")
    assert (room["start_at"], room["end_at"]) == (start_at, start_at + 60)

    # fifty people join at once: one meeting, fifty attendees
    users = [f"pupil-{n}" for n in range(50)]
    joins = await asyncio.gather(
        *(
            client.post(f"/rooms/{room_id}/join", headers=bearer(settings, u), timeout=60)
            for u in users
        )
    )
    assert [j.status_code for j in joins] == [200] * 50, joins[0].text
    meetings = {j.json()["Meeting"]["MeetingId"] for j in joins}
    assert len(meetings) == 1
    assert len({j.json()["Attendee"]["AttendeeId"] for j in joins}) == 50
    counters = await chime.counters()
    assert counters["calls"]["CreateMeeting"] == 1
    assert counters["calls"].get("CreateAttendee", 0) == 0
    assert 1 <= counters["calls"]["BatchCreateAttendee"] <= 25  # joins share calls
    [first_meeting] = meetings

    # Chime ends the meeting (as after five idle minutes): the next join makes a new one
    await chime.end_meeting(first_meeting)
    late = await client.post(f"/rooms/{room_id}/join", headers=bearer(settings, "late"))
    assert late.status_code == 200, late.text
    second_meeting = late.json()["Meeting"]["MeetingId"]
    assert second_meeting != first_meeting
    assert (await chime.counters())["calls"]["CreateMeeting"] == 2

    # at end_at the scheduler ends the room; rooms deletes the meeting and refuses joins
    clock.advance(start_at + 60 - clock() + 0.05)
    [(_, ended)] = await probe.wait_for("RoomEnded", room_id, timeout=10)
    assert ended.data.model_dump()["ended_at"] == start_at + 60

    async def meeting_deleted() -> bool:
        live = await chime.live_meetings()
        return not any(m["ExternalMeetingId"] == room_id for m in live)

    await wait_until(meeting_deleted, timeout=15, message="the meeting deleted")
    assert (await chime.counters())["succeeded"].get("DeleteMeeting", 0) >= 1

    async def refused() -> bool:
        response = await client.post(f"/rooms/{room_id}/join", headers=viewer)
        code: str = response.json().get("error", {}).get("code", "")
        return response.status_code == 409 and code == "room_not_active"

    await wait_until(refused, timeout=10, message="409 room_not_active")
    listed_after = (await client.get("/rooms", headers=viewer)).json()["rooms"]
    assert room_id not in {r["room_id"] for r in listed_after}
    status = (await client.get(f"/schedule/{room_id}", headers=admin)).json()["status"]
    assert status == "ended"
    assert len(probe.of("RoomActivated", room_id)) == 1
    assert (await chime.counters())["calls"]["CreateMeeting"] == 2
