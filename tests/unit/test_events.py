"""The event registry and the envelope: the single source of truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.bus.base import topic_matches
from shared.events import (
    REGISTRY,
    AttachmentRef,
    Envelope,
    MessagePosted,
    RoomActivated,
    UndecodableEvent,
    decode,
    spec_for_routing_key,
)
from shared.logging import log_context
from shared.topology import QUEUES, durable_bindings

DESIGN_TABLE = {
    "RoomScheduled": "room.scheduled",
    "RoomActivated": "room.activated",
    "RoomEnded": "room.ended",
    "RoomCancelled": "room.cancelled",
    "MeetingStarted": "room.meeting_started",
    "AttendeeJoined": "room.attendee_joined",
    "AttendeeLeft": "room.attendee_left",
    "MessagePosted": "chat.message_posted",
    "UserMentioned": "chat.user_mentioned",
    "ChannelJoined": "chat.channel_joined",
}


def activated() -> RoomActivated:
    return RoomActivated(
        room_id="r", title="t", topic="x", start_at=1, end_at=2, media_region="us-east-1"
    )


def test_every_event_of_the_design_is_registered_under_its_routing_key() -> None:
    for type_name, routing_key in DESIGN_TABLE.items():
        assert REGISTRY[type_name].routing_key == routing_key
        assert spec_for_routing_key(routing_key).type_name == type_name


# Published with `publish_transient` (not mandatory, never stored): only the notifier
# replicas' fan-out queues take them.
EPHEMERAL = {"UserTyping"}


def test_every_event_type_has_a_consumer_queue() -> None:
    """Publishes are mandatory: an event nobody is bound to would be refused.
    An ephemeral event has a fan-out queue, and only that."""
    fanout = {q.name: q.routing_keys for q in QUEUES.values() if q.fanout}
    for name, spec in REGISTRY.items():
        queues = fanout if name in EPHEMERAL else durable_bindings()
        bound = [
            queue
            for queue, keys in queues.items()
            if any(topic_matches(key, spec.routing_key) for key in keys)
        ]
        assert bound, f"no queue consumes {spec.routing_key}"


def test_the_envelope_round_trips_through_json() -> None:
    data = MessagePosted(
        message_id="m1",
        channel_id="c1",
        channel_arn="arn:aws:chime:us-east-1:1:app-instance/a/channel/c1",
        sender_id="u1",
        content="hello @m1",
        mentions=["m1"],
        attachments=[
            AttachmentRef(
                attachment_id="a1", key="k", name="n.pdf", size=3, content_type="application/pdf"
            )
        ],
        posted_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
    )
    envelope = Envelope.new(data, producer="chat", correlation_id="c-1")
    wire = json.loads(envelope.encode())
    assert wire["type"] == "MessagePosted"
    assert wire["version"] == 1
    assert wire["data"]["posted_at"] == "2026-11-21T09:00:00Z"
    assert wire["data"]["attachments"][0]["size"] == 3
    back = decode(envelope.encode())
    assert back == envelope
    assert isinstance(back.data, MessagePosted)
    assert back.routing_key == "chat.message_posted"


def test_times_are_converted_to_utc_and_naive_times_refused() -> None:
    plus_two = timezone(timedelta(hours=2))
    envelope = Envelope.new(
        activated(), producer="p", occurred_at=datetime(2026, 1, 1, 11, tzinfo=plus_two)
    )
    assert envelope.occurred_at == datetime(2026, 1, 1, 9, tzinfo=UTC)
    with pytest.raises(ValidationError):
        Envelope.new(activated(), producer="p", occurred_at=datetime(2026, 1, 1, 11))


def test_the_correlation_id_comes_from_the_log_context() -> None:
    with log_context(correlation_id="from-request"):
        assert Envelope.new(activated(), producer="p").correlation_id == "from-request"
    assert Envelope.new(activated(), producer="p").correlation_id is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.update(version=2), "unknown_version"),
        (lambda e: e.update(type="RoomExploded"), "unknown_type"),
        (lambda e: e.pop("event_id"), "invalid_envelope"),
        (lambda e: e["data"].pop("room_id"), "invalid_data"),
        (lambda e: e["data"].update(start_at=-5), "invalid_data"),
    ],
)
def test_what_cannot_be_handled_is_refused_with_a_reason(change, reason: str) -> None:
    wire = json.loads(Envelope.new(activated(), producer="p").encode())
    change(wire)
    with pytest.raises(UndecodableEvent) as refused:
        decode(json.dumps(wire))
    assert refused.value.reason == reason


def test_unknown_fields_are_kept_not_refused() -> None:
    wire = json.loads(Envelope.new(activated(), producer="p").encode())
    wire["data"]["capacity"] = 30
    wire["trace"] = {"span": "s"}
    back = decode(json.dumps(wire))
    assert back.data.model_extra == {"capacity": 30}
    assert back.model_extra == {"trace": {"span": "s"}}
