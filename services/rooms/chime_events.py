"""Chime's meeting lifecycle events, as rooms reads them: what an EventBridge
envelope from the SQS queue says, and what it does to an attendee's presence.

Plain data, no I/O. SQS is at-least-once and unordered, so every change is
ordered by Chime's own `detail.timestamp` (milliseconds) and then by how far
along an attendee's life the event is: an attendee's presence only moves to an
event newer than the last one applied, which makes a duplicate (the same
event, the same timestamp) and an older event arriving late change nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from shared.events import Presence

SOURCE = "aws.chime"
DETAIL_TYPE = "Chime Meeting State Change"

MEETING_STARTED = "chime:MeetingStarted"
MEETING_ENDED = "chime:MeetingEnded"
ATTENDEE_ADDED = "chime:AttendeeAdded"

# eventType -> (connected afterwards, what rooms calls it, rank among events of one ms)
PRESENCE: dict[str, tuple[bool, Presence, int]] = {
    "chime:AttendeeJoined": (True, "connected", 1),
    "chime:AttendeeLeft": (False, "left", 2),
    "chime:AttendeeDropped": (False, "dropped", 2),
    "chime:AttendeeDeleted": (False, "deleted", 3),
}
# Known and of no consequence for presence (rooms made the meeting and the
# attendee itself; the rest are media events).
IGNORED = frozenset(
    {
        MEETING_STARTED,
        ATTENDEE_ADDED,
        "chime:AttendeeAuthorized",
        "chime:AttendeeVideoStarted",
        "chime:AttendeeVideoStopped",
        "chime:AttendeeContentJoined",
        "chime:AttendeeContentLeft",
        "chime:AttendeeContentVideoStarted",
        "chime:AttendeeContentVideoStopped",
        "chime:MeetingTranscriptionStarted",
        "chime:MeetingTranscriptionStopped",
    }
)


class BadMeetingEvent(ValueError):
    """A message that is not a Chime meeting event: dead-lettered (`reason`)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class MeetingEvent:
    event_id: str  # the EventBridge envelope's id
    event_type: str  # detail.eventType
    timestamp_ms: int
    meeting_id: str
    attendee_id: str | None = None

    @property
    def order(self) -> int:
        """Where this event stands in its attendee's life (later is larger)."""
        rank = PRESENCE[self.event_type][2] if self.event_type in PRESENCE else 0
        return self.timestamp_ms * 10 + rank


def _text(detail: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = detail.get(name)
    if isinstance(value, str) and value:
        return value
    if required or value is not None:
        raise BadMeetingEvent("invalid_detail", f"detail.{name} must be a non-empty string")
    return None


def parse(body: str) -> MeetingEvent:
    """The meeting event an SQS message carries; `BadMeetingEvent` if it is not
    one (not JSON, not a Chime meeting state change, fields missing)."""
    try:
        envelope = json.loads(body)
    except ValueError:
        raise BadMeetingEvent("not_json") from None
    if not isinstance(envelope, dict):
        raise BadMeetingEvent("not_an_event", "the body is not a JSON object")
    if envelope.get("source") != SOURCE or envelope.get("detail-type") != DETAIL_TYPE:
        raise BadMeetingEvent("not_a_meeting_event", f"source {envelope.get('source')!r}")
    detail = envelope.get("detail")
    event_id = envelope.get("id")
    if not isinstance(detail, dict) or not isinstance(event_id, str) or not event_id:
        raise BadMeetingEvent("not_an_event", "id and detail are required")
    event_type = _text(detail, "eventType")
    timestamp = detail.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise BadMeetingEvent("invalid_detail", "detail.timestamp must be epoch milliseconds")
    assert event_type is not None
    meeting_id = _text(detail, "meetingId")
    assert meeting_id is not None
    attendee_id = _text(detail, "attendeeId", required=event_type in PRESENCE)
    return MeetingEvent(event_id, event_type, timestamp, meeting_id, attendee_id)


@dataclass(frozen=True)
class PresenceRecord:
    """An attendee of one of a room's meetings, and whether it is connected."""

    meeting_id: str
    attendee_id: str
    room_id: str
    user_id: str
    connected: bool = False
    order: int = 0  # the `MeetingEvent.order` last applied (0: none yet)


@dataclass(frozen=True)
class PresenceChange:
    before: PresenceRecord
    after: PresenceRecord
    presence: Presence


def advance(record: PresenceRecord, event: MeetingEvent) -> PresenceChange | None:
    """The attendee after `event`, or None when the event is not newer than the
    last one applied (a duplicate, or one that arrived late)."""
    if event.event_type not in PRESENCE or event.order <= record.order:
        return None
    connected, presence, _ = PRESENCE[event.event_type]
    return PresenceChange(record, replace(record, connected=connected, order=event.order), presence)
