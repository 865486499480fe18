"""The event envelope and every event of DESIGN.md: the single source of truth.

Events are plain pydantic data, no infrastructure imports. One registry maps
type name <-> routing key <-> model; `encode`/`decode` are the only places an
envelope becomes bytes and back. Decoding tolerates unknown fields (producers
may be newer) and rejects unknown major versions and unknown types with an
`UndecodableEvent` carrying a short machine-readable reason, so the consumer
edge can dead-letter it at once.
"""
# ruff: noqa: PLC0414

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

# re-exported: the base of every event model lives in shared.event_model
from shared.event_model import REGISTRY as REGISTRY
from shared.event_model import EpochSeconds as EpochSeconds
from shared.event_model import EventData as EventData
from shared.event_model import EventSpec as EventSpec
from shared.event_model import UtcDatetime as UtcDatetime
from shared.event_model import event as event
from shared.event_model import spec_for_routing_key as spec_for_routing_key
from shared.event_model import utcnow as utcnow
from shared.logging import current_correlation_id

# --- scheduler ---------------------------------------------------------------


@event("RoomScheduled", "room.scheduled")
class RoomScheduled(EventData):
    room_id: str
    title: str
    topic: str
    start_at: EpochSeconds
    end_at: EpochSeconds
    duration_minutes: int
    media_region: str
    scheduled_by: str


@event("RoomActivated", "room.activated")
class RoomActivated(EventData):
    room_id: str
    title: str
    topic: str
    start_at: EpochSeconds
    end_at: EpochSeconds
    media_region: str


@event("RoomEnded", "room.ended")
class RoomEnded(EventData):
    room_id: str
    ended_at: EpochSeconds


@event("RoomCancelled", "room.cancelled")
class RoomCancelled(EventData):
    room_id: str
    cancelled_by: str


# --- rooms -------------------------------------------------------------------


@event("MeetingStarted", "room.meeting_started")
class MeetingStarted(EventData):
    room_id: str
    meeting_id: str
    media_region: str


@event("AttendeeJoined", "room.attendee_joined")
class AttendeeJoined(EventData):
    room_id: str
    meeting_id: str
    attendee_id: str
    user_id: str


@event("AttendeeLeft", "room.attendee_left")
class AttendeeLeft(EventData):
    room_id: str
    meeting_id: str
    attendee_id: str
    user_id: str


Presence = Literal["connected", "left", "dropped", "deleted"]


@event("AttendeePresenceChanged", "room.attendee_presence_changed")
class AttendeePresenceChanged(EventData):
    """Chime says an attendee of the room's meeting connected, left, dropped or
    was deleted (its meeting events, through EventBridge and SQS)."""

    room_id: str
    meeting_id: str
    attendee_id: str
    user_id: str
    presence: Presence
    attendee_count: int = Field(ge=0, description="Connected attendees of the room after it.")


@event("MeetingEnded", "room.meeting_ended")
class MeetingEnded(EventData):
    """Chime ended the room's meeting (idle, its maximum length, or deleted); the
    next join creates a new one."""

    room_id: str
    meeting_id: str


@event("RoomUpdated", "room.updated")
class RoomUpdated(EventData):
    """What the landing page shows of a room changed: it activated, ended or was
    cancelled, or its count of connected attendees moved. `version` orders the
    counts of one room (it grows with every count change)."""

    room_id: str
    title: str
    status: Literal["scheduled", "active", "ended", "cancelled"]
    attendee_count: int = Field(ge=0)
    version: int = Field(ge=0)


# --- chat --------------------------------------------------------------------


class AttachmentRef(BaseModel):
    """What a message says about one of its attachments (the bytes are in S3)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    attachment_id: str
    key: str
    name: str
    size: int = Field(ge=0)
    content_type: str


ChannelKind = Literal["customer", "managers"]


@event("MessagePosted", "chat.message_posted")
class MessagePosted(EventData):
    message_id: str
    channel_id: str
    channel_arn: str
    sender_id: str
    content: str
    mentions: list[str] = Field(default_factory=list)
    attachments: list[AttachmentRef] = Field(default_factory=list)
    posted_at: UtcDatetime
    # Extensions (docs/events.md): who may read the channel, for the notifier.
    channel_kind: ChannelKind | None = None
    customer_id: str | None = None


@event("UserMentioned", "chat.user_mentioned")
class UserMentioned(EventData):
    mention_id: str
    message_id: str
    channel_id: str
    channel_arn: str
    mentioned_user_id: str
    mentioned_by: str
    excerpt: str
    channel_kind: ChannelKind | None = None
    customer_id: str | None = None


@event("MessageUpdated", "chat.message_updated")
class MessageUpdated(EventData):
    """The sender edited a message: its new content and mentions, in full."""

    message_id: str
    channel_id: str
    channel_arn: str
    sender_id: str
    content: str
    mentions: list[str] = Field(default_factory=list)
    attachments: list[AttachmentRef] = Field(default_factory=list)
    posted_at: UtcDatetime
    edited_at: UtcDatetime
    channel_kind: ChannelKind | None = None
    customer_id: str | None = None


@event("MessageDeleted", "chat.message_deleted")
class MessageDeleted(EventData):
    """The sender, or a manager (moderation), deleted a message."""

    message_id: str
    channel_id: str
    channel_arn: str
    sender_id: str
    deleted_at: UtcDatetime
    deleted_by: str
    channel_kind: ChannelKind | None = None
    customer_id: str | None = None


@event("ChannelJoined", "chat.channel_joined")
class ChannelJoined(EventData):
    channel_id: str
    channel_arn: str
    user_id: str
    reason: Literal["mention", "manual", "assignment"]
    # Extensions (docs/events.md): who may read the channel, for the notifier.
    channel_kind: ChannelKind | None = None
    customer_id: str | None = None


@event("ChannelLeft", "chat.channel_left")
class ChannelLeft(EventData):
    """A membership ended: the person was reassigned away, left by hand, or lost
    the role that let them read the channel (`role_lost`)."""

    channel_id: str
    channel_arn: str
    user_id: str
    reason: Literal["reassignment", "manual", "role_lost"]
    channel_kind: ChannelKind | None = None
    customer_id: str | None = None


@event("ChannelRead", "chat.channel_read")
class ChannelRead(EventData):
    """A person marked a channel read up to a message (monotonic: chat emits it
    only when the mark moved forward)."""

    channel_id: str
    user_id: str
    up_to: str
    read_at: str
    unread_count: int = 0
    channel_kind: ChannelKind | None = None
    customer_id: str | None = None


@event("UserTyping", "notifier.user_typing")
class UserTyping(EventData):
    """Ephemeral, notifier to notifier: someone is typing in a channel. Published
    non-persistent (no outbox, no retry) to every replica's fan-out queue, which
    sends `typing` frames to the named recipients' sessions; never stored."""

    channel_id: str
    user_id: str
    recipients: list[str] = Field(
        default_factory=list,
        description="The channel's other members, as the sender's replica knows them.",
    )
    channel_kind: ChannelKind | None = None
    customer_id: str | None = None


# --- the envelope --------------------------------------------------------------


class UndecodableEvent(Exception):
    """The bytes are not an event this consumer can handle; `reason` names why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Header(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: str = Field(min_length=1, max_length=64)
    type: str
    version: int = Field(ge=1)
    occurred_at: UtcDatetime
    producer: str
    correlation_id: str | None = None


class Envelope(_Header):
    data: SerializeAsAny[EventData]

    @classmethod
    def new(
        cls,
        data: EventData,
        *,
        producer: str,
        correlation_id: str | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Self:
        """Wrap `data`; the correlation id defaults to the one bound in the log context."""
        return cls(
            event_id=event_id or str(uuid.uuid4()),
            type=data.TYPE,
            version=data.VERSION,
            occurred_at=occurred_at or utcnow(),
            producer=producer,
            correlation_id=correlation_id or current_correlation_id(),
            data=data,
        )

    @property
    def routing_key(self) -> str:
        return REGISTRY[self.type].routing_key

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


@dataclass(frozen=True)
class Producer:
    """A service's way to wrap its events: `announce = Producer("rooms")`, then
    `announce(AttendeeJoined(...))` is the envelope, with the correlation id of
    the request or event being handled."""

    name: str

    def __call__(
        self,
        data: EventData,
        *,
        correlation_id: str | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        return Envelope.new(
            data, producer=self.name, correlation_id=correlation_id, event_id=event_id
        )


class _RawEnvelope(_Header):
    data: dict[str, Any]


def decode(body: bytes | str) -> Envelope:
    """Bytes -> a typed envelope, or `UndecodableEvent` with the reason."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UndecodableEvent("invalid_json", str(exc)[:200]) from None
    try:
        envelope = _RawEnvelope.model_validate(raw)
    except ValidationError as exc:
        raise UndecodableEvent("invalid_envelope", _summary(exc)) from None
    spec = REGISTRY.get(envelope.type)
    if spec is None:
        raise UndecodableEvent("unknown_type", f"no event type {envelope.type!r}")
    if envelope.version > spec.version:
        raise UndecodableEvent(
            "unknown_version",
            f"{envelope.type} version {envelope.version} is newer than {spec.version}",
        )
    try:
        data = spec.model.model_validate(envelope.data)
    except ValidationError as exc:
        raise UndecodableEvent("invalid_data", _summary(exc)) from None
    fields = envelope.model_dump(exclude={"data"})
    return Envelope.model_validate({**fields, "data": data})


def _summary(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts)[:500]
