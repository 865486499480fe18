"""`room.updated` over real RabbitMQ, moto server and the Chime emulator: rooms
publishes RoomUpdated, every WebSocket on every notifier replica gets the
landing page's changes, coalesced, in version order, and the feed's cursors and
`?since=` resume are not disturbed by them."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.notifier.settings import NotifierSettings
from shared.bus import EventBus, create_bus
from shared.events import Producer, RoomUpdated
from tests.notifier.conftest import Chat, Client, ws_client
from tests.notifier.test_notifier_amqp import notifier
from tests.support import wait_until

pytestmark = pytest.mark.amqp

announce = Producer("rooms")


@dataclass
class Rooms:
    """Publishes what the rooms service would."""

    bus: EventBus

    async def update(
        self, room_id: str, count: int = 0, version: int = 0, status: str = "active"
    ) -> None:
        data = RoomUpdated.model_validate(
            {
                "room_id": room_id,
                "title": f"Room {room_id}",
                "status": status,
                "attendee_count": count,
                "version": version,
            }
        )
        await self.bus.publish(announce(data))


@pytest.fixture
async def rooms(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str
) -> AsyncIterator[Rooms]:
    bus = create_bus(notifier_settings(amqp_url=amqp_url), "rooms")
    await bus.start()
    try:
        yield Rooms(bus)
    finally:
        await bus.stop()


def room_id() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


def consumed() -> float:
    """RoomUpdated handled on the fan-out queue, by every replica in this process."""
    labels = {
        "component": "notifier",
        "queue": "notifier.fanout",
        "event_type": "RoomUpdated",
        "outcome": "ok",
    }
    return REGISTRY.get_sample_value("belfry_bus_consumed_total", labels) or 0.0


def frames_sent() -> float:
    labels = {"type": "room.updated"}
    return REGISTRY.get_sample_value("belfry_notifier_ws_frames_total", labels) or 0.0


def shown(client: Client, room: str) -> tuple[str, int] | None:
    frames = client.rooms(room)
    return (frames[-1]["status"], frames[-1]["attendee_count"]) if frames else None


async def until_shown(client: Client, room: str, state: tuple[str, int]) -> None:
    await client.wait_for(lambda f: shown(client, room) == state)


async def test_every_client_on_every_replica_sees_a_room_activate_fill_up_and_end(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, rooms: Rooms
) -> None:
    one = notifier_settings(amqp_url=amqp_url, instance_id="replica-1")
    two = notifier_settings(amqp_url=amqp_url, instance_id="replica-2")
    interval = one.notifier_room_frame_interval_seconds
    room = room_id()
    async with (
        notifier(one) as base_one,
        notifier(two) as base_two,
        ws_client(base_one, one, "c1", ["customer"]) as c1,
        ws_client(base_two, two, "m1", ["manager"]) as m1,
    ):
        clients = (c1, m1)
        sent_before = frames_sent()
        await rooms.update(room, 0, 0)  # activation
        for client in clients:
            await until_shown(client, room, ("active", 0))
        started = time.monotonic()
        for n in range(1, 21):  # a burst of count changes
            await rooms.update(room, n, n)
        burst = time.monotonic() - started
        for client in clients:
            await until_shown(client, room, ("active", 20))
            counts = [d["attendee_count"] for d in client.rooms(room)]
            # the first change at once, then at most one frame per interval
            assert len(counts) - 1 <= 2 + math.ceil(burst / interval), (burst, counts)
            assert counts == sorted(counts)  # versions order the counts
            frame = next(f for f in client.frames if f["type"] == "room.updated")
            assert set(frame) == {"type", "data"}  # no cursor
            assert frame["data"] == {
                "room_id": room,
                "title": f"Room {room}",
                "status": "active",
                "attendee_count": 0,
            }
        await rooms.update(room, 20, 20, "ended")
        for client in clients:
            await until_shown(client, room, ("ended", 0))
        received = sum(len(c.rooms(room)) for c in clients)
        assert frames_sent() - sent_before >= received


async def test_a_late_older_count_or_activation_does_not_change_what_is_shown(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, rooms: Rooms
) -> None:
    # no coalescing: a wrongly merged update would be sent at once, not merged away
    settings = notifier_settings(amqp_url=amqp_url, notifier_room_frame_interval_seconds=0)
    room = room_id()
    async with notifier(settings) as base, ws_client(base, settings, "c1", ["customer"]) as c1:

        async def fenced(*updates: tuple[int, int, str]) -> None:
            """Publish, wait until handled, then until a later frame of another
            room arrived: a frame the updates caused came before it."""
            before = consumed()
            for count, version, status in updates:
                await rooms.update(room, count, version, status)
            await wait_until(lambda: consumed() >= before + len(updates), message="handled")
            fence = room_id()
            await rooms.update(fence, 1, 1)
            await c1.wait_for(lambda f: shown(c1, fence) is not None)

        await rooms.update(room, 0, 0)
        await rooms.update(room, 5, 5)
        await c1.wait_for(lambda f: shown(c1, room) == ("active", 5))
        await fenced((99, 3, "active"), (42, 4, "active"))  # older counts, out of order
        assert [d["attendee_count"] for d in c1.rooms(room)][-1] == 5
        assert not {99, 42} & {d["attendee_count"] for d in c1.rooms(room)}
        await rooms.update(room, 0, 6, "cancelled")
        await c1.wait_for(lambda f: shown(c1, room) == ("cancelled", 0))
        await fenced((3, 7, "active"))  # a late activation, even with a newer version
        assert shown(c1, room) == ("cancelled", 0)
        assert [d["status"] for d in c1.rooms(room)].count("cancelled") == 1


def contents(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"]["content"] for f in frames if f["type"] == "message.posted"]


async def test_room_frames_between_feed_frames_leave_the_cursor_and_resume_alone(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, chat: Chat, rooms: Rooms
) -> None:
    settings = notifier_settings(amqp_url=amqp_url)
    before_rooms = [room_id() for _ in range(3)]
    away, after = room_id(), room_id()
    async with notifier(settings) as base:
        await chat.assign()
        async with ws_client(base, settings, "c1", ["customer"]) as first:
            for i, room in enumerate(before_rooms):
                await chat.publish(chat.message("m1", f"before {i}"))
                await rooms.update(room, i + 1, 1)
            await first.wait_for(
                lambda f: len(contents(f)) == 3 and all(first.rooms(r) for r in before_rooms)
            )
            seen = contents(first.frames)
            cursor = first.cursor  # of the last feed frame, whatever came after it
        handled = consumed()
        for i in range(4):
            await chat.publish(chat.message("m1", f"while away {i}"))
            await rooms.update(away, i, i)
        await wait_until(lambda: consumed() >= handled + 4, message="the away updates handled")
        async with ws_client(base, settings, "c1", ["customer"], since=cursor) as again:
            await chat.publish(chat.message("m1", "after"))
            await rooms.update(after, 2, 1)
            await again.wait_for(lambda f: "after" in contents(f) and bool(again.rooms(after)))
            everything = seen + contents(again.frames)
            expected = [f"before {i}" for i in range(3)]
            expected += [f"while away {i}" for i in range(4)] + ["after"]
            assert sorted(everything) == sorted(expected)  # nothing missed, nothing twice
            cursors = [int(f["cursor"]) for f in again.frames if "cursor" in f][1:]
            assert cursors == sorted(set(cursors))
            assert cursors[0] > int(cursor)
            # not replayed: what changed while away is for GET /rooms
            assert again.rooms(away) == []
            assert not any(again.rooms(r) for r in before_rooms)
            assert all("cursor" not in f for f in again.frames if f["type"] == "room.updated")
