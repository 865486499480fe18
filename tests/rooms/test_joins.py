"""Joining rooms end to end: RabbitMQ (the scheduler's events in, rooms'
events out), moto server and the Chime emulator."""

from __future__ import annotations

from typing import Any

import pytest
from aiobotocore.session import get_session

from shared.events import RoomEnded, RoomScheduled
from tests.rooms.conftest import Rooms, gather_limited
from tests.support import wait_until

pytestmark = pytest.mark.amqp


async def chime_meeting(rooms: Rooms, meeting_id: str) -> dict[str, Any]:
    """GetMeeting straight from the emulator, as a Chime SDK client sees it."""
    async with get_session().create_client(
        "chime-sdk-meetings",
        endpoint_url=rooms.settings.chime_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        response = await client.get_meeting(MeetingId=meeting_id)
        return dict(response["Meeting"])


async def test_fifty_concurrent_first_joins_create_one_meeting_and_fifty_attendees(
    rooms: Rooms,
) -> None:
    room_id = await rooms.activate(title="Fifty")
    listed = (await rooms.client.get("/rooms", headers=rooms.auth("viewer"))).json()["rooms"]
    mine = [r for r in listed if r["room_id"] == room_id]
    assert len(mine) == 1
    assert mine[0]["title"] == "Fifty"
    assert mine[0]["attendee_count"] == 0
    assert set(mine[0]) >= {"room_id", "title", "topic", "media_region", "start_at", "end_at"}

    users = [f"user-{n}" for n in range(50)]
    responses = await gather_limited([rooms.join(room_id, u) for u in users], limit=50)
    assert [r.status_code for r in responses] == [200] * 50, responses[0].text

    bodies = [r.json() for r in responses]
    meeting_ids = {b["Meeting"]["MeetingId"] for b in bodies}
    assert len(meeting_ids) == 1
    attendees = {b["Attendee"]["AttendeeId"] for b in bodies}
    assert len(attendees) == 50
    assert {b["Attendee"]["ExternalUserId"] for b in bodies} == set(users)
    # The Meeting object is Chime's own, unchanged.
    assert bodies[0]["Meeting"] == await chime_meeting(rooms, meeting_ids.pop())

    counters = await rooms.chime.counters()
    assert counters["calls"]["CreateMeeting"] == 1
    # joins that arrive together share one BatchCreateAttendee (issue 11)
    assert counters["calls"].get("CreateAttendee", 0) == 0
    assert 1 <= counters["calls"]["BatchCreateAttendee"] <= 25, counters["calls"]
    live = await rooms.live_meetings(room_id)
    assert len(live) == 1
    assert live[0]["attendee_count"] == 50

    listing = await rooms.client.get(f"/rooms/{room_id}/attendees", headers=rooms.auth("viewer"))
    assert listing.status_code == 200
    assert {a["user_id"] for a in listing.json()["attendees"]} == set(users)

    await wait_until(
        lambda: len(rooms.of_type("AttendeeJoined", room_id)) == 50, message="50 AttendeeJoined"
    )
    assert len(rooms.of_type("MeetingStarted", room_id)) == 1

    # joined, not connected: the landing page counts connected attendees
    # (Chime's meeting events, tests/rooms/test_meeting_events.py)
    assert not any(a["connected"] for a in listing.json()["attendees"])
    room = await rooms.client.get(f"/rooms/{room_id}", headers=rooms.auth("viewer"))
    assert room.json()["attendee_count"] == 0


async def test_a_user_who_joins_again_gets_the_same_attendee(rooms: Rooms) -> None:
    room_id = await rooms.activate()
    first = await rooms.join(room_id, "ada")
    again = await rooms.join(room_id, "ada")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    counters = await rooms.chime.counters()
    assert counters["calls"]["BatchCreateAttendee"] == 2  # a warm join is one Chime call
    assert counters["calls"]["CreateMeeting"] == 1
    await wait_until(lambda: len(rooms.of_type("AttendeeJoined", room_id)) == 1)
    attendees = await rooms.client.get(f"/rooms/{room_id}/attendees", headers=rooms.auth("x"))
    assert len(attendees.json()["attendees"]) == 1


async def test_a_meeting_chime_ended_is_recreated_once_for_concurrent_joiners(
    rooms: Rooms,
) -> None:
    room_id = await rooms.activate()
    first = (await rooms.join(room_id, "ada")).json()
    old_meeting = first["Meeting"]["MeetingId"]
    await rooms.chime.end_meeting(old_meeting)  # as Chime does after 5 idle minutes

    responses = await gather_limited([rooms.join(room_id, f"late-{n}") for n in range(10)])
    assert [r.status_code for r in responses] == [200] * 10
    new_ids = {r.json()["Meeting"]["MeetingId"] for r in responses}
    assert len(new_ids) == 1
    assert old_meeting not in new_ids
    counters = await rooms.chime.counters()
    assert counters["calls"]["CreateMeeting"] == 2
    live = await rooms.live_meetings(room_id)
    assert [m["MeetingId"] for m in live] == list(new_ids)

    # ada's attendee went with the old meeting: joining again gives a new one.
    again = (await rooms.join(room_id, "ada")).json()
    assert again["Meeting"]["MeetingId"] in new_ids
    assert again["Attendee"]["AttendeeId"] != first["Attendee"]["AttendeeId"]
    await wait_until(lambda: len(rooms.of_type("AttendeeLeft", room_id)) == 1)
    left = rooms.of_type("AttendeeLeft", room_id)[0].data
    assert left.meeting_id == old_meeting  # type: ignore[attr-defined]
    assert len(rooms.of_type("MeetingStarted", room_id)) == 2


async def test_room_ended_deletes_the_meeting_unlists_and_refuses_joins(rooms: Rooms) -> None:
    room_id = await rooms.activate()
    meeting_id = (await rooms.join(room_id, "ada")).json()["Meeting"]["MeetingId"]
    await rooms.publish(RoomEnded(room_id=room_id, ended_at=1))

    async def deleted() -> bool:
        return (await rooms.chime.counters())["succeeded"].get("DeleteMeeting", 0) == 1

    await wait_until(deleted, timeout=15, message="DeleteMeeting")
    assert await rooms.live_meetings(room_id) == []
    room = await rooms.handled(room_id, lambda r: r.meeting is None)
    assert room.status == "ended"
    listed = (await rooms.client.get("/rooms", headers=rooms.auth("v"))).json()["rooms"]
    assert room_id not in {r["room_id"] for r in listed}
    refused = await rooms.join(room_id, "bob")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "room_not_active"
    assert (await rooms.client.get(f"/rooms/{room_id}", headers=rooms.auth("v"))).json()[
        "status"
    ] == "ended"
    assert meeting_id not in {m["MeetingId"] for m in await rooms.chime.live_meetings()}


async def test_leave_deletes_the_attendee_and_announces_it(rooms: Rooms) -> None:
    room_id = await rooms.activate()
    joined = (await rooms.join(room_id, "ada")).json()
    await rooms.join(room_id, "bob")
    left = await rooms.client.post(f"/rooms/{room_id}/leave", headers=rooms.auth("ada"))
    assert left.status_code == 204
    assert left.content == b""
    counters = await rooms.chime.counters()
    assert counters["succeeded"]["DeleteAttendee"] == 1
    live = await rooms.live_meetings(room_id)
    assert live[0]["attendee_count"] == 1
    attendees = await rooms.client.get(f"/rooms/{room_id}/attendees", headers=rooms.auth("x"))
    assert [a["user_id"] for a in attendees.json()["attendees"]] == ["bob"]
    await wait_until(lambda: len(rooms.of_type("AttendeeLeft", room_id)) == 1)
    event = rooms.of_type("AttendeeLeft", room_id)[0].data
    assert event.attendee_id == joined["Attendee"]["AttendeeId"]  # type: ignore[attr-defined]
    # Leaving again is fine; leaving a room that never existed is not.
    again = await rooms.client.post(f"/rooms/{room_id}/leave", headers=rooms.auth("ada"))
    assert again.status_code == 204
    unknown = await rooms.client.post("/rooms/no-such-room/leave", headers=rooms.auth("ada"))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "room_not_found"


async def test_rooms_outside_their_window_are_not_listed_or_joinable(rooms: Rooms) -> None:
    later = await rooms.activate(starts_in=600)
    scheduled = f"room-s-{later}"
    await rooms.publish(
        RoomScheduled(
            room_id=scheduled,
            title="Soon",
            topic="t",
            start_at=1,
            end_at=2_000_000_000,
            duration_minutes=60,
            media_region="us-east-1",
            scheduled_by="admin",
        )
    )
    await rooms.handled(scheduled, lambda r: r.status == "scheduled")
    listed = (await rooms.client.get("/rooms", headers=rooms.auth("v"))).json()["rooms"]
    assert not {later, scheduled} & {r["room_id"] for r in listed}
    for room_id in (later, scheduled):
        refused = await rooms.join(room_id, "ada")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "room_not_active"
    assert (await rooms.chime.counters())["calls"].get("CreateMeeting", 0) == 0
