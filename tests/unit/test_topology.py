"""The subscription table: every queue's events have a handler in its
service's table, and wiring fails at start-up, not at the first delivery."""

from __future__ import annotations

import pytest

from services.chat.handlers import HANDLERS as CHAT
from services.notifier.handlers import HANDLERS as NOTIFIER
from services.rooms.handlers import HANDLERS as ROOMS
from shared.events import Envelope, EventData, RoomEnded, RoomScheduled
from shared.topology import QUEUES, EventHandler, durable_bindings, wire

TABLES = {"rooms": ROOMS, "chat": CHAT, "notifier": NOTIFIER}


def test_every_queue_is_handled_by_its_consumer_for_each_of_its_events() -> None:
    for queue in QUEUES.values():
        table = TABLES[queue.consumer]
        assert queue.name in table, f"{queue.consumer} has no handlers for {queue.name}"
        assert set(table[queue.name]) == set(queue.events), queue.name
    assert {name for t in TABLES.values() for name in t} == set(QUEUES)


def test_fan_out_queues_are_not_declared_ahead() -> None:
    assert "notifier.fanout" not in durable_bindings()
    assert durable_bindings()["rooms.schedule"] == (
        "room.scheduled",
        "room.activated",
        "room.ended",
        "room.cancelled",
    )


async def test_wire_routes_each_type_to_its_handler_with_its_ports() -> None:
    seen: list[tuple[str, str, int]] = []

    async def on_ended(event: RoomEnded, envelope: Envelope, *, tag: str, n: int) -> None:
        seen.append((event.room_id, tag, n))

    async def ignore(event: object, envelope: Envelope) -> None:
        seen.append(("ignored", "", 0))

    handlers: dict[type[EventData], EventHandler] = dict.fromkeys(
        QUEUES["rooms.schedule"].events, ignore
    )
    handlers[RoomEnded] = on_ended
    (sub,) = wire({"rooms.schedule": handlers}, tag="x", n=3, unused=object())
    assert sub.queue == "rooms.schedule"
    assert sub.routing_keys == QUEUES["rooms.schedule"].routing_keys
    handler = sub.handler_for("RoomEnded")
    assert handler is not None
    await handler(Envelope.new(RoomEnded(room_id="r1", ended_at=1), producer="scheduler"))
    assert seen == [("r1", "x", 3)]
    assert sub.handler_for("ChannelJoined") is None


def test_wire_refuses_a_table_that_does_not_cover_its_queue() -> None:
    async def handler(event: object, envelope: Envelope) -> None:
        return None

    with pytest.raises(ValueError, match="missing"):
        wire({"rooms.schedule": {RoomScheduled: handler}})


def test_wire_refuses_a_handler_whose_port_is_missing() -> None:
    async def handler(event: object, envelope: Envelope, *, rooms: object) -> None:
        return None

    table = {"rooms.schedule": dict.fromkeys(QUEUES["rooms.schedule"].events, handler)}
    with pytest.raises(TypeError, match="rooms"):
        wire(table)
