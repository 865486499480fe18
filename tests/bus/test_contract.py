"""The bus contract: every test here runs on `memory://` and on RabbitMQ."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from structlog.contextvars import get_contextvars

from shared.bus import RejectEvent, Subscription, UnroutableEvent
from shared.events import ChannelJoined, Envelope, RoomActivated, RoomEnded
from shared.logging import log_context
from tests.bus.conftest import Harness
from tests.support import wait_until


def activated(room_id: str = "r1") -> Envelope:
    data = RoomActivated(
        room_id=room_id,
        title="Standup",
        topic="daily",
        start_at=1000,
        end_at=2000,
        media_region="us-east-1",
    )
    return Envelope.new(data, producer="scheduler")


def ended(room_id: str = "r1") -> Envelope:
    return Envelope.new(RoomEnded(room_id=room_id, ended_at=2000), producer="scheduler")


async def test_a_published_event_reaches_its_handler_typed_and_intact(harness: Harness) -> None:
    got: list[Envelope] = []
    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.activated",), _append(got)))
    await bus.start()
    sent = activated()
    await bus.publish(sent)
    await wait_until(lambda: len(got) == 1, message="delivery")
    assert got[0] == sent
    assert isinstance(got[0].data, RoomActivated)
    assert got[0].data.title == "Standup"


async def test_handler_logs_carry_the_correlation_and_event_ids(harness: Harness) -> None:
    seen: list[dict[str, object]] = []

    async def handler(_: Envelope) -> None:
        seen.append(dict(get_contextvars()))

    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.#",), handler))
    await bus.start()
    with log_context(correlation_id="req-42"):
        sent = activated()  # the correlation id is taken from the request's context
    await bus.publish(sent)
    await wait_until(lambda: len(seen) == 1, message="delivery")
    assert seen[0]["correlation_id"] == "req-42"
    assert seen[0]["event_id"] == sent.event_id


async def test_topic_routing_and_fan_out_to_every_bound_queue(harness: Harness) -> None:
    rooms: list[str] = []
    audit: list[str] = []
    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.*",), _types(rooms)))
    bus.subscribe(Subscription("audit.all", ("#",), _types(audit)))
    await bus.start()
    await bus.publish(activated())
    await bus.publish(
        Envelope.new(
            ChannelJoined(channel_id="c", channel_arn="arn", user_id="u", reason="manual"),
            producer="chat",
        )
    )
    await wait_until(lambda: len(audit) == 2, message="audit sees both")
    await wait_until(lambda: len(rooms) == 1, message="rooms sees its event")
    assert rooms == ["RoomActivated"]
    assert sorted(audit) == ["ChannelJoined", "RoomActivated"]


async def test_a_failing_handler_is_retried_and_then_succeeds(harness: Harness) -> None:
    attempts: Counter[str] = Counter()

    async def flaky(env: Envelope) -> None:
        attempts[env.event_id] += 1
        if attempts[env.event_id] < 3:
            raise RuntimeError("transient")

    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.ended",), flaky))
    await bus.start()
    sent = ended()
    await bus.publish(sent)
    await wait_until(lambda: attempts[sent.event_id] == 3, message="third attempt")
    assert await bus.dead_letters("rooms.lifecycle") == []


async def test_a_handler_that_keeps_failing_ends_in_the_dlq_with_the_reason(
    harness: Harness,
) -> None:
    attempts: Counter[str] = Counter()
    handled: list[str] = []

    async def handler(env: Envelope) -> None:
        attempts[env.event_id] += 1
        assert isinstance(env.data, RoomEnded)
        if env.data.room_id == "bad":
            raise ValueError("room bad is broken")
        handled.append(env.data.room_id)

    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.ended",), handler))
    await bus.start()
    bad = ended("bad")
    await bus.publish(bad)
    await bus.publish(ended("good"))
    letters = await _dead_letters(bus, "rooms.lifecycle", 1)
    assert handled == ["good"]  # the consumer kept going
    assert attempts[bad.event_id] == 3  # first try + the two configured retries
    (letter,) = letters
    assert letter.reason == "handler_failed"
    assert "ValueError: room bad is broken" in letter.error
    assert letter.attempts == 3
    assert letter.event_id == bad.event_id
    assert json.loads(letter.body)["event_id"] == bad.event_id


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b'{"type": "RoomEnded"}', "invalid_envelope"),
        (
            b'{"event_id": "e1", "type": "RoomExploded", "version": 1, "producer": "x",'
            b' "occurred_at": "2026-01-01T00:00:00Z", "data": {}}',
            "unknown_type",
        ),
        (
            b'{"event_id": "e2", "type": "RoomEnded", "version": 2, "producer": "x",'
            b' "occurred_at": "2026-01-01T00:00:00Z", "data": {"room_id": "r", "ended_at": 1}}',
            "unknown_version",
        ),
        (
            b'{"event_id": "e3", "type": "RoomEnded", "version": 1, "producer": "x",'
            b' "occurred_at": "2026-01-01T00:00:00Z", "data": {"room_id": "r"}}',
            "invalid_data",
        ),
    ],
)
async def test_poison_goes_to_the_dlq_at_once_and_the_consumer_keeps_going(
    harness: Harness, body: bytes, reason: str
) -> None:
    calls: list[str] = []
    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.ended",), _types(calls)))
    await bus.start()
    await harness.publish_raw("room.ended", body)
    await bus.publish(ended())
    letters = await _dead_letters(bus, "rooms.lifecycle", 1)
    await wait_until(lambda: calls == ["RoomEnded"], message="the good event after the poison")
    assert letters[0].reason == reason
    assert letters[0].attempts == 1
    assert letters[0].body == body


async def test_unknown_fields_are_tolerated(harness: Harness) -> None:
    got: list[Envelope] = []
    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.ended",), _append(got)))
    await bus.start()
    body = json.loads(ended().encode())
    body["shiny_new_field"] = True
    body["data"]["also_new"] = [1, 2]
    await harness.publish_raw("room.ended", json.dumps(body).encode())
    await wait_until(lambda: len(got) == 1, message="delivery")
    assert got[0].model_extra == {"shiny_new_field": True}
    assert got[0].data.model_extra == {"also_new": [1, 2]}


async def test_reject_event_dead_letters_without_retrying(harness: Harness) -> None:
    calls: list[str] = []

    async def handler(env: Envelope) -> None:
        calls.append(env.event_id)
        raise RejectEvent("room_unknown", "no such room")

    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.ended",), handler))
    await bus.start()
    await bus.publish(ended())
    letters = await _dead_letters(bus, "rooms.lifecycle", 1)
    assert len(calls) == 1
    assert letters[0].reason == "room_unknown"


async def test_an_event_type_the_queue_has_no_handler_for_is_dead_lettered(
    harness: Harness,
) -> None:
    """Handlers by type: the dispatcher routes on the event's type; a type the
    queue has no handler for goes to the DLQ once, and the consumer goes on."""
    calls: list[str] = []
    bus = harness.bus()
    bus.subscribe(
        Subscription(
            "rooms.lifecycle",
            ("room.*",),
            handlers={"RoomEnded": _types(calls)},
        )
    )
    await bus.start()
    stray = activated()
    await bus.publish(stray)
    await bus.publish(ended())
    letters = await _dead_letters(bus, "rooms.lifecycle", 1)
    await wait_until(lambda: calls == ["RoomEnded"], message="the handled type after the stray")
    assert letters[0].reason == "unexpected_event"
    assert letters[0].event_id == stray.event_id
    assert letters[0].attempts == 1


async def test_publishing_what_no_queue_is_bound_to_raises(harness: Harness) -> None:
    bus = harness.bus()
    await bus.start()
    with pytest.raises(UnroutableEvent):
        await bus.publish(ended())


async def test_declared_queues_keep_events_until_their_consumer_starts(harness: Harness) -> None:
    producer = harness.bus("scheduler")
    await producer.start()
    await producer.declare({"rooms.lifecycle": ("room.ended",)})
    sent = ended()
    await producer.publish(sent)  # routable although nobody consumes yet
    got: list[Envelope] = []
    consumer = harness.bus("rooms")
    consumer.subscribe(Subscription("rooms.lifecycle", ("room.ended",), _append(got)))
    await consumer.start()
    await wait_until(lambda: len(got) == 1, message="the buffered event")
    assert got[0].event_id == sent.event_id


async def test_stop_lets_in_flight_handlers_finish(harness: Harness) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def slow(env: Envelope) -> None:
        started.set()
        await release.wait()
        finished.append(env.event_id)

    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.ended",), slow))
    await bus.start()
    sent = ended()
    await bus.publish(sent)
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.create_task(bus.stop_consuming(drain_timeout=10))
    await asyncio.sleep(0)
    assert not stopping.done()  # waits for the handler
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert finished == [sent.event_id]
    assert not bus.health().ok


async def test_health_reports_consumers(harness: Harness) -> None:
    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.ended",), _types([])))
    assert not bus.health().ok
    await bus.start()
    assert bus.health().ok


async def test_dead_letters_can_be_replayed(harness: Harness) -> None:
    broken = True
    handled: list[str] = []

    async def handler(env: Envelope) -> None:
        if broken:
            raise RuntimeError("dependency down")
        handled.append(env.event_id)

    bus = harness.bus()
    bus.subscribe(Subscription("rooms.lifecycle", ("room.ended",), handler))
    await bus.start()
    sent = ended()
    await bus.publish(sent)
    await _dead_letters(bus, "rooms.lifecycle", 1)
    broken = False
    assert await bus.replay_dead_letters("rooms.lifecycle") == 1
    await wait_until(lambda: handled == [sent.event_id], message="the replayed event")
    await wait_until(
        lambda: _no_letters(bus, "rooms.lifecycle"), message="the DLQ to empty", timeout=5
    )


def _append(into: list[Envelope]):
    async def handler(env: Envelope) -> None:
        into.append(env)

    return handler


def _types(into: list[str]):
    async def handler(env: Envelope) -> None:
        into.append(env.type)

    return handler


async def _dead_letters(bus, queue: str, count: int):
    letters = []

    async def enough() -> bool:
        nonlocal letters
        letters = await bus.dead_letters(queue)
        return len(letters) >= count

    await wait_until(enough, message=f"{count} dead letter(s) in {queue}", interval=0.05)
    return letters


async def _no_letters(bus, queue: str) -> bool:
    letters = await bus.dead_letters(queue)
    return not letters
