"""The scheduler's events into rooms' read model over RabbitMQ: out-of-order
delivery never resurrects a room, duplicates are absorbed by the inbox."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from shared.events import (
    AttendeeJoined,
    RoomActivated,
    RoomCancelled,
    RoomEnded,
    RoomScheduled,
)
from tests.rooms.conftest import Rooms
from tests.support import wait_until

pytestmark = pytest.mark.amqp


def activated(room_id: str) -> RoomActivated:
    now = int(time.time())
    return RoomActivated(
        room_id=room_id,
        title="Late",
        topic="t",
        start_at=now - 5,
        end_at=now + 3600,
        media_region="us-east-1",
    )


async def seen(rooms: Rooms, queue: str, event_id: str) -> None:
    """The event is in rooms' inbox (handled, whether it changed the row or not)."""
    await wait_until(lambda: rooms.inbox.seen(queue, event_id), timeout=15, message=f"{event_id}")


async def test_room_ended_before_room_activated_does_not_resurrect(rooms: Rooms) -> None:
    room_id = f"room-{uuid.uuid4().hex[:8]}"
    await rooms.publish(RoomEnded(room_id=room_id, ended_at=int(time.time())))
    await rooms.handled(room_id, lambda r: r.status == "ended")
    late = await rooms.publish(activated(room_id))
    await seen(rooms, "rooms.schedule", late.event_id)

    room = await rooms.room(room_id)
    assert room is not None
    assert room.status == "ended"
    listed = (await rooms.client.get("/rooms", headers=rooms.auth("v"))).json()["rooms"]
    assert room_id not in {r["room_id"] for r in listed}
    refused = await rooms.join(room_id, "ada")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "room_not_active"


async def test_a_cancelled_room_loses_its_meeting_and_stays_cancelled(rooms: Rooms) -> None:
    room_id = await rooms.activate()
    meeting_id = (await rooms.join(room_id, "ada")).json()["Meeting"]["MeetingId"]
    cancel = RoomCancelled(room_id=room_id, cancelled_by="admin")
    first = await rooms.publish(cancel)
    await rooms.handled(room_id, lambda r: r.status == "cancelled" and r.meeting is None)
    assert meeting_id not in {m["MeetingId"] for m in await rooms.chime.live_meetings()}
    # The same event again (a redelivery), and a stale activation: no effect.
    await rooms.scheduler.publish(first)
    late = await rooms.publish(activated(room_id))
    await seen(rooms, "rooms.schedule", late.event_id)
    room = await rooms.room(room_id)
    assert room is not None
    assert room.status == "cancelled"
    counters = await rooms.chime.counters()
    assert counters["succeeded"]["DeleteMeeting"] == 1
    assert counters["calls"]["CreateMeeting"] == 1


async def test_an_older_room_scheduled_does_not_overwrite_a_newer_one(rooms: Rooms) -> None:
    room_id = f"room-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)

    def scheduled(title: str) -> RoomScheduled:
        return RoomScheduled(
            room_id=room_id,
            title=title,
            topic="t",
            start_at=int(now.timestamp()) + 600,
            end_at=int(now.timestamp()) + 4200,
            duration_minutes=60,
            media_region="eu-west-1",
            scheduled_by="admin",
        )

    await rooms.publish(scheduled("Renamed"), occurred_at=now)
    await rooms.handled(room_id, lambda r: r.title == "Renamed")
    old = await rooms.publish(scheduled("Original"), occurred_at=now - timedelta(seconds=30))
    await seen(rooms, "rooms.schedule", old.event_id)
    room = await rooms.room(room_id)
    assert room is not None
    assert room.title == "Renamed"
    view = (await rooms.client.get(f"/rooms/{room_id}", headers=rooms.auth("v"))).json()
    assert view["status"] == "scheduled"
    assert view["media_region"] == "eu-west-1"


async def test_attendance_events_are_consumed_and_the_count_follows_the_rows(
    rooms: Rooms,
) -> None:
    """The landing page's count moves in the join's own transaction (issue 11):
    rooms' attendance events, duplicates included, are taken off their queue
    without counting anyone twice, or at all."""
    room_id = await rooms.activate()
    joined = AttendeeJoined(
        room_id=room_id,
        meeting_id=str(uuid.uuid4()),
        attendee_id=str(uuid.uuid4()),
        user_id="ghost",
    )
    labels = {
        "component": "rooms",
        "queue": "rooms.attendance",
        "event_type": "AttendeeJoined",
        "outcome": "ok",
    }

    def handled() -> float:
        return REGISTRY.get_sample_value("belfry_bus_consumed_total", labels) or 0.0

    before = handled()
    event = await rooms.publish(joined)
    await rooms.scheduler.publish(event)  # the broker redelivers it
    await rooms.publish(joined)
    await wait_until(lambda: handled() - before >= 3, timeout=15, message="three deliveries")
    room = await rooms.room(room_id)
    assert room is not None
    assert room.attendee_count == 0  # nobody joined
    assert (await rooms.join(room_id, "real")).status_code == 200
    assert (await rooms.join(room_id, "real")).status_code == 200  # the same attendee
    room = await rooms.room(room_id)
    assert room is not None
    assert room.attendee_count == 0  # joined, not connected: only Chime's events count
