"""Rooms' rules: what a room is, when it can be joined, and the errors joins raise.

Plain data, no I/O. A room's lifecycle comes from the scheduler's events and
only moves forward: scheduled -> active -> ended | cancelled. The terminal
states win whatever order events arrive in, so a late RoomActivated never
resurrects an ended room.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from shared.errors import Conflict, NotFound, ServiceUnavailable
from shared.events import Producer, RoomUpdated

SCHEDULED, ACTIVE, ENDED, CANCELLED = "scheduled", "active", "ended", "cancelled"
TERMINAL = (ENDED, CANCELLED)
LISTED = "active"  # the one partition of the `listed` index (a sparse index)

announce = Producer("rooms")

_TOKEN_NAMESPACE = uuid.UUID("7b0c5a8e-9a55-4d0e-9a43-8f1d2a6b3c11")
_CHIME_ID = re.compile(r"^[-_a-zA-Z0-9.@+=:/]{2,64}$")


class RoomNotFound(NotFound):
    code = "room_not_found"


class RoomNotActive(Conflict):
    code = "room_not_active"


class RoomFull(Conflict):
    code = "room_full"


class MeetingUnavailable(ServiceUnavailable):
    """Chime throttled or failed past our retries, or the meeting is still being
    created by another join after the bounded wait."""


def room_busy() -> MeetingUnavailable:
    """The room's row kept racing other writes past the retries: 503, not 500."""
    return MeetingUnavailable("the room is busy, try again", code="room_busy")


@dataclass(frozen=True)
class RoomDetails:
    """What the scheduler says about a room (RoomScheduled, RoomActivated)."""

    title: str
    topic: str
    media_region: str
    start_at: int
    end_at: int


@dataclass(frozen=True)
class Lifecycle:
    """One of the scheduler's events, as it changes rooms' read model: the room
    is now `status`; `event_ms` orders RoomScheduled announcements."""

    room_id: str
    status: str
    event_ms: int
    expires_at: int
    details: RoomDetails | None = None  # scheduled and active carry them


Applied = Literal["applied", "duplicate", "superseded"]
"""What handling an event did: written; the inbox had it already; or the row
had moved past it (only the inbox record is written)."""


@dataclass(frozen=True)
class Room:
    room_id: str
    status: str
    title: str = ""
    topic: str = ""
    media_region: str = ""
    start_at: int = 0
    end_at: int = 0
    attendee_count: int = 0  # connected attendees of its meeting (Chime's events)
    presence_version: int = 0  # grows with every change of the count
    meeting: dict[str, Any] | None = None
    meeting_generation: int = 0
    lease_owner: str | None = None
    lease_until: int = 0

    @property
    def meeting_id(self) -> str | None:
        return None if self.meeting is None else str(self.meeting["MeetingId"])

    def is_joinable(self, now: float) -> bool:
        return self.status == ACTIVE and self.start_at <= now < self.end_at

    def ensure_joinable(self, now: float) -> None:
        if not self.is_joinable(now):
            raise RoomNotActive(f"room {self.room_id} is not active")

    def lease_is_live(self, now: float) -> bool:
        return self.lease_owner is not None and self.lease_until >= now

    def view(self) -> dict[str, Any]:
        """What clients see of a room."""
        return {
            "room_id": self.room_id,
            "title": self.title,
            "topic": self.topic,
            "media_region": self.media_region,
            "start_at": self.start_at,
            "end_at": self.end_at,
            "status": self.status,
            "attendee_count": max(0, self.attendee_count),
        }

    def updated(self) -> RoomUpdated:
        """The landing page's view of this room, as an event (an ended or
        cancelled room shows nobody)."""
        return RoomUpdated.model_validate(
            {
                "room_id": self.room_id,
                "title": self.title,
                "status": self.status,
                "attendee_count": 0 if self.status in TERMINAL else max(0, self.attendee_count),
                "version": self.presence_version,
            }
        )


@dataclass(frozen=True)
class AttendeeRecord:
    room_id: str
    user_id: str
    meeting_id: str
    attendee: dict[str, Any]
    joined_at: int
    connected: bool = False  # as Chime's events say (not stored with the row)

    @property
    def attendee_id(self) -> str:
        return str(self.attendee["AttendeeId"])

    def view(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "attendee_id": self.attendee_id,
            "meeting_id": self.meeting_id,
            "joined_at": self.joined_at,
            "connected": self.connected,
        }


def meeting_request_token(room_id: str, generation: int) -> str:
    """ClientRequestToken of the room's `generation`-th meeting: every retry and
    every replica that creates this generation sends the same token, so Chime
    answers with one meeting (it protects retries; the lease decides who creates)."""
    return uuid.uuid5(_TOKEN_NAMESPACE, f"{room_id}#{generation}").hex


def external_meeting_id(room_id: str) -> str:
    """Chime's ExternalMeetingId (2-64 characters, not unique): the room id when it fits."""
    return room_id if _CHIME_ID.match(room_id) else "room-" + _digest(room_id)


def external_user_id(user_id: str) -> str:
    """Chime's ExternalUserId (2-64 characters): the user id when it fits."""
    return user_id if _CHIME_ID.match(user_id) else "user-" + _digest(user_id)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]
