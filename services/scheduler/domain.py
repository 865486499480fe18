"""The schedule's rules: what a room is, which transitions it may make, and the
events that announce them. No I/O here; time comes in as an argument.

A room's life: scheduled -> active (at `start_at`) -> ended (at `end_at`), or
scheduled/active -> cancelled (an admin's DELETE). `revision` grows with every
change and is the optimistic lock every write is conditional on, so of two
replicas racing for one transition exactly one wins.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum

from shared.errors import Conflict, NotFound, Unprocessable
from shared.events import (
    Envelope,
    EventData,
    Producer,
    RoomActivated,
    RoomCancelled,
    RoomEnded,
    RoomScheduled,
)

announce = Producer("scheduler")

# Chime SDK meetings' media regions (the `MediaRegion` of CreateMeeting).
MEDIA_REGIONS: frozenset[str] = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "eu-central-1",
        "eu-north-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-south-1",
        "af-south-1",
        "ap-east-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "sa-east-1",
        "il-central-1",
        "us-gov-east-1",
        "us-gov-west-1",
    }
)

TITLE_MAX = 64
TOPIC_MAX = 500
DURATION_MIN, DURATION_MAX = 1, 1440
# Epoch seconds are written as 10 digits in sort keys; this is year 2286.
EPOCH_MAX = 9_999_999_999
# An event id is derived from the room and its transition, so a transition
# announced twice (it never should be) would still be one event to consumers.
_EVENT_NAMESPACE = uuid.UUID("5f0c1d6e-2b7a-4c8e-9f3d-6a1b2c3d4e5f")


class Phase(StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ENDED = "ended"
    CANCELLED = "cancelled"


# --- errors (mapped to JSON by the app factory) --------------------------------


class RoomNotFound(NotFound):
    code = "room_not_found"


class TitleTaken(Conflict):
    code = "title_taken"


class RoomAlreadyStarted(Conflict):
    code = "room_started"


class RoomAlreadyCancelled(Conflict):
    code = "room_cancelled"


class RoomAlreadyEnded(Conflict):
    code = "room_ended"


class ConcurrentChange(Conflict):
    code = "concurrent_change"


class StartInPast(Unprocessable):
    code = "start_in_past"


class StartTooFar(Unprocessable):
    code = "start_too_far"


# --- the room ------------------------------------------------------------------


def title_key(title: str) -> str:
    """Titles are unique case-insensitively and ignoring runs of white space."""
    return " ".join(title.split()).casefold()


@dataclass(frozen=True)
class Rules:
    start_grace_seconds: int = 60
    max_lead_seconds: int = 366 * 86400

    def check_start(self, start_at: int, now: float) -> None:
        if start_at < now - self.start_grace_seconds:
            raise StartInPast(
                f"start {start_at} is in the past (now {int(now)}, "
                f"grace {self.start_grace_seconds} s)"
            )
        if start_at > now + self.max_lead_seconds or start_at > EPOCH_MAX:
            raise StartTooFar(f"start {start_at} is too far ahead")


@dataclass(frozen=True)
class RoomDraft:
    """What an admin asks for (already shape-checked at the edge)."""

    title: str
    start_at: int
    duration_minutes: int
    topic: str
    media_region: str


@dataclass(frozen=True)
class RoomChanges:
    """A PATCH: only the fields given change."""

    title: str | None = None
    start_at: int | None = None
    duration_minutes: int | None = None
    topic: str | None = None
    media_region: str | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in vars(self).values())


@dataclass(frozen=True)
class Room:
    room_id: str
    title: str
    topic: str
    start_at: int
    duration_minutes: int
    media_region: str
    scheduled_by: str
    phase: Phase
    revision: int
    created_at: int
    updated_at: int
    correlation_id: str | None = None
    cancelled_by: str | None = None
    ended_at: int | None = None

    @property
    def end_at(self) -> int:
        return self.start_at + self.duration_minutes * 60

    @property
    def title_key(self) -> str:
        return title_key(self.title)

    @property
    def due_at(self) -> int:
        """When the room's next transition is due; for finished rooms, when it finished
        (the sort order of the listings)."""
        if self.phase is Phase.SCHEDULED:
            return self.start_at
        if self.phase is Phase.ACTIVE:
            return self.end_at
        if self.phase is Phase.ENDED:
            return self.ended_at or self.end_at
        return self.updated_at

    def expires_at(self, retention_seconds: int) -> int:
        """The TTL attribute: never before the room's end."""
        return max(self.end_at, self.ended_at or 0) + retention_seconds

    @property
    def holds_title(self) -> bool:
        return self.phase in (Phase.SCHEDULED, Phase.ACTIVE)


def new_room(
    draft: RoomDraft,
    *,
    by: str,
    now: float,
    rules: Rules,
    room_id: str | None = None,
    correlation_id: str | None = None,
) -> Room:
    rules.check_start(draft.start_at, now)
    return Room(
        room_id=room_id or uuid.uuid4().hex,
        title=" ".join(draft.title.split()),
        topic=draft.topic,
        start_at=draft.start_at,
        duration_minutes=draft.duration_minutes,
        media_region=draft.media_region,
        scheduled_by=by,
        phase=Phase.SCHEDULED,
        revision=1,
        created_at=int(now),
        updated_at=int(now),
        correlation_id=correlation_id,
    )


def _refuse_unless_scheduled(room: Room, now: float) -> None:
    if room.phase is Phase.CANCELLED:
        raise RoomAlreadyCancelled(f"room {room.room_id} is cancelled")
    if room.phase is Phase.ENDED:
        raise RoomAlreadyEnded(f"room {room.room_id} has ended")
    if room.phase is Phase.ACTIVE or now >= room.start_at:
        raise RoomAlreadyStarted(f"room {room.room_id} has started; it can no longer change")


def change_room(room: Room, changes: RoomChanges, *, now: float, rules: Rules) -> Room:
    """A PATCH, allowed only before the start; a new start is checked like a new room's."""
    _refuse_unless_scheduled(room, now)
    if changes.start_at is not None and changes.start_at != room.start_at:
        rules.check_start(changes.start_at, now)
    return replace(
        room,
        title=" ".join(changes.title.split()) if changes.title is not None else room.title,
        topic=changes.topic if changes.topic is not None else room.topic,
        start_at=changes.start_at if changes.start_at is not None else room.start_at,
        duration_minutes=changes.duration_minutes or room.duration_minutes,
        media_region=changes.media_region or room.media_region,
        revision=room.revision + 1,
        updated_at=int(now),
    )


def cancel_room(room: Room, *, by: str, now: float) -> Room:
    """Cancel a scheduled or active room (an active one is also ended)."""
    if room.phase is Phase.CANCELLED:
        raise RoomAlreadyCancelled(f"room {room.room_id} is already cancelled")
    if room.phase is Phase.ENDED:
        raise RoomAlreadyEnded(f"room {room.room_id} has ended")
    return replace(
        room,
        phase=Phase.CANCELLED,
        cancelled_by=by,
        ended_at=int(now) if room.phase is Phase.ACTIVE else None,
        revision=room.revision + 1,
        updated_at=int(now),
    )


def activate(room: Room, *, now: float) -> Room:
    if room.phase is not Phase.SCHEDULED or now < room.start_at:
        raise ValueError(f"room {room.room_id} is not due for activation")
    return replace(room, phase=Phase.ACTIVE, revision=room.revision + 1, updated_at=int(now))


def end(room: Room, *, now: float) -> Room:
    if room.phase is not Phase.ACTIVE or now < room.end_at:
        raise ValueError(f"room {room.room_id} is not due to end")
    return replace(
        room,
        phase=Phase.ENDED,
        ended_at=room.end_at,
        revision=room.revision + 1,
        updated_at=int(now),
    )


# --- events ----------------------------------------------------------------------


def _event_id(room: Room, what: str) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{room.room_id}:{what}:{room.revision}"))


def _envelope(room: Room, data: EventData) -> Envelope:
    return announce(data, correlation_id=room.correlation_id, event_id=_event_id(room, data.TYPE))


def scheduled_event(room: Room) -> Envelope:
    """Announces a new room and every change to it; `revision` (an extension,
    docs/events.md) lets a consumer ignore an older announcement."""
    data = RoomScheduled(
        room_id=room.room_id,
        title=room.title,
        topic=room.topic,
        start_at=room.start_at,
        end_at=room.end_at,
        duration_minutes=room.duration_minutes,
        media_region=room.media_region,
        scheduled_by=room.scheduled_by,
        revision=room.revision,
    )
    return _envelope(room, data)


def activated_event(room: Room) -> Envelope:
    data = RoomActivated(
        room_id=room.room_id,
        title=room.title,
        topic=room.topic,
        start_at=room.start_at,
        end_at=room.end_at,
        media_region=room.media_region,
    )
    return _envelope(room, data)


def ended_event(room: Room) -> Envelope:
    return _envelope(room, RoomEnded(room_id=room.room_id, ended_at=room.ended_at or room.end_at))


def cancelled_events(before: Room, after: Room) -> list[Envelope]:
    """RoomCancelled; for a room that was active also RoomEnded, so that whoever
    holds its meeting tears it down the same way as at a normal end."""
    cancelled = RoomCancelled(room_id=after.room_id, cancelled_by=after.cancelled_by or "")
    events = [_envelope(after, cancelled)]
    if before.phase is Phase.ACTIVE:
        events.append(ended_event(after))
    return events
