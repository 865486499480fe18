"""Rooms activate at their start and end at their end, exactly once, over real
RabbitMQ and moto: with one replica, with two on one table, and after a
scheduler was down over a start."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from shared.dynamo import transact
from shared.events import Envelope, RoomCancelled
from tests.scheduler.conftest import EventProbe, MovableClock, scheduler_app
from tests.support import wait_until

pytestmark = pytest.mark.amqp


def room_body(title: str, start_at: float, **extra: Any) -> dict[str, Any]:
    body = {
        "title": title,
        "start_at": int(start_at),
        "duration_minutes": 1,
        "topic": "a topic",
        "media_region": "eu-central-1",
    }
    body.update(extra)
    return body


async def test_a_room_is_announced_activated_on_time_and_ended(
    scheduler_settings, clock: MovableClock, probe: EventProbe
) -> None:
    async with scheduler_app(scheduler_settings(), clock) as (client, _):
        start_at = int(clock()) + 2
        created = await client.post("/schedule", json=room_body("Standup", start_at))
        assert created.status_code == 201, created.text
        room = created.json()
        assert room["status"] == "scheduled"
        assert room["end_at"] == start_at + 60

        [(_, scheduled)] = await probe.wait_for("RoomScheduled", room["room_id"])
        assert scheduled.data.model_dump() == {
            "room_id": room["room_id"],
            "title": "Standup",
            "topic": "a topic",
            "start_at": start_at,
            "end_at": start_at + 60,
            "duration_minutes": 1,
            "media_region": "eu-central-1",
            "scheduled_by": "ada",
            "revision": 1,
        }
        assert not probe.of("RoomActivated")

        [(arrived, activated)] = await probe.wait_for("RoomActivated", timeout=5)
        assert start_at <= arrived < start_at + 1, f"arrived {arrived - start_at:.3f} s after"
        assert activated.data.model_dump() == {
            "room_id": room["room_id"],
            "title": "Standup",
            "topic": "a topic",
            "start_at": start_at,
            "end_at": start_at + 60,
            "media_region": "eu-central-1",
        }
        assert activated.correlation_id == scheduled.correlation_id
        assert (await client.get(f"/schedule/{room['room_id']}")).json()["status"] == "active"
        assert not probe.of("RoomEnded")

        clock.advance(60)  # the minute of the meeting, without waiting for it
        [(_, ended)] = await probe.wait_for("RoomEnded", room["room_id"])
        assert ended.data.model_dump() == {"room_id": room["room_id"], "ended_at": start_at + 60}
        current = (await client.get(f"/schedule/{room['room_id']}")).json()
        assert current["status"] == "ended"
        assert current["ended_at"] == start_at + 60
        listed = (await client.get("/schedule", params={"status": "ended"})).json()
        assert [r["room_id"] for r in listed["items"]] == [room["room_id"]]

        # its title is free again once the room has ended
        again = await client.post("/schedule", json=room_body("standup", clock() + 60))
        assert again.status_code == 201, again.text
    assert len(probe.of("RoomActivated")) == 1


async def test_two_replicas_activate_and_end_every_room_exactly_once(
    scheduler_settings, clock: MovableClock, probe: EventProbe
) -> None:
    rooms = 30
    settings = scheduler_settings(scheduler_rooms_per_transaction=5)
    async with (
        scheduler_app(settings, clock) as (first, one),
        scheduler_app(settings, clock) as (_, two),
    ):
        start_at = int(clock()) + 2
        created = await asyncio.gather(
            *(first.post("/schedule", json=room_body(f"Room {i}", start_at)) for i in range(rooms))
        )
        assert [r.status_code for r in created] == [201] * rooms
        ids = {r.json()["room_id"] for r in created}

        await probe.wait_for("RoomActivated", count=rooms, timeout=10)
        clock.advance(60)
        await probe.wait_for("RoomEnded", count=rooms, timeout=10)
        # let any duplicate arrive before counting
        await asyncio.sleep(4 * settings.scheduler_tick_seconds)
        for kind in ("RoomActivated", "RoomEnded"):
            counts = Counter(e.data.room_id for _, e in probe.of(kind))  # type: ignore[attr-defined]
            assert set(counts) == ids
            assert set(counts.values()) == {1}, kind
        assert one.activator.ticks > 0
        assert two.activator.ticks > 0


async def test_a_scheduler_that_was_down_over_a_start_catches_up(
    scheduler_settings, clock: MovableClock, probe: EventProbe
) -> None:
    settings = scheduler_settings()
    async with scheduler_app(settings, clock) as (client, _):
        now = int(clock())
        starts = (await client.post("/schedule", json=room_body("Starts", now + 30))).json()
        over = (await client.post("/schedule", json=room_body("Over", now + 10))).json()
        await probe.wait_for("RoomScheduled", count=2)

    clock.advance(75)  # down: "Starts" should have started, "Over" started and ended
    assert not probe.of("RoomActivated")

    async with scheduler_app(settings, clock):
        [(arrived, _)] = await probe.wait_for("RoomActivated", starts["room_id"], timeout=5)
        assert arrived - starts["start_at"] >= 45  # emitted after the restart, not before
        await probe.wait_for("RoomEnded", over["room_id"], timeout=5)
        order = [e.type for _, e in probe.events if e.data.room_id == over["room_id"]]  # type: ignore[attr-defined]
        assert order == ["RoomScheduled", "RoomActivated", "RoomEnded"]
        await asyncio.sleep(0.5)
        assert not probe.of("RoomEnded", starts["room_id"])  # it ends at start + 60 s


async def test_cancelled_rooms_never_activate_and_patch_retimes(
    scheduler_settings, clock: MovableClock, probe: EventProbe
) -> None:
    async with scheduler_app(scheduler_settings(), clock) as (client, _):
        now = int(clock())
        sooner = (await client.post("/schedule", json=room_body("Sooner", now + 60))).json()
        later = (await client.post("/schedule", json=room_body("Later", now + 2))).json()
        cancelled = (await client.post("/schedule", json=room_body("Cancelled", now + 2))).json()

        moved = await client.patch(f"/schedule/{sooner['room_id']}", json={"start_at": now + 2})
        assert moved.status_code == 200, moved.text
        assert moved.json()["revision"] == 2
        pushed = await client.patch(f"/schedule/{later['room_id']}", json={"start_at": now + 120})
        assert pushed.status_code == 200, pushed.text
        gone = await client.delete(f"/schedule/{cancelled['room_id']}")
        assert gone.status_code == 200, gone.text
        assert gone.json()["status"] == "cancelled"
        [(_, event)] = await probe.wait_for("RoomCancelled", cancelled["room_id"])
        assert event.data.cancelled_by == "ada"  # type: ignore[attr-defined]

        [(_, activated)] = await probe.wait_for("RoomActivated", timeout=5)
        assert activated.data.room_id == sooner["room_id"]  # type: ignore[attr-defined]
        # the re-timed room was announced again with its new times
        rescheduled = probe.of("RoomScheduled", later["room_id"])
        await wait_until(lambda: len(probe.of("RoomScheduled", later["room_id"])) == 2)
        rescheduled = probe.of("RoomScheduled", later["room_id"])
        assert rescheduled[-1][1].data.start_at == now + 120  # type: ignore[attr-defined]
        await asyncio.sleep(0.5)
        assert [e.data.room_id for _, e in probe.of("RoomActivated")] == [sooner["room_id"]]  # type: ignore[attr-defined]

        # started: no more changes, and cancelling now ends it too
        too_late = await client.patch(f"/schedule/{sooner['room_id']}", json={"topic": "x"})
        assert too_late.status_code == 409
        assert too_late.json()["error"]["code"] == "room_started"
        stop = await client.delete(f"/schedule/{sooner['room_id']}")
        assert stop.status_code == 200
        await probe.wait_for("RoomEnded", sooner["room_id"])
        twice = await client.delete(f"/schedule/{sooner['room_id']}")
        assert twice.status_code == 409
        assert twice.json()["error"]["code"] == "room_cancelled"


async def test_rooms_past_their_ttl_are_not_read_and_readiness_watches_the_loop(
    scheduler_settings, clock: MovableClock, probe: EventProbe
) -> None:
    settings = scheduler_settings(scheduler_retention_seconds=0)
    async with scheduler_app(settings, clock) as (client, scheduler):
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["scheduler.activation"]["ok"] is True

        room = (await client.post("/schedule", json=room_body("Brief", clock() + 5))).json()
        clock.advance(70)  # started and ended; with no retention, expired too
        await probe.wait_for("RoomEnded", room["room_id"])
        gone = await client.get(f"/schedule/{room['room_id']}")
        assert gone.status_code == 404, gone.text
        listed = (await client.get("/schedule", params={"status": "ended"})).json()
        assert listed["items"] == []
        assert scheduler.activator.ticks > 0


async def test_events_still_in_the_outbox_at_shutdown_are_published_by_the_flush(
    scheduler_settings, aws, probe: EventProbe
) -> None:
    """The runtime flushes outboxes on the way out, while the bus can still
    publish (a row the relay would have taken after its grace period)."""
    async with scheduler_app(scheduler_settings()) as (_, scheduler):
        envelope = Envelope.new(
            RoomCancelled(room_id="left-behind", cancelled_by="ada"), producer="scheduler"
        )
        row = scheduler.outbox.row(envelope)
        await transact(aws.dynamodb, [row.item(scheduler.outbox.table)])
    [(_, flushed)] = await probe.wait_for("RoomCancelled", "left-behind")
    assert flushed.event_id == envelope.event_id
