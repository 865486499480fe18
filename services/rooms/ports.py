"""What rooms needs from the outside, as Protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.events import Envelope

from .chime_events import PresenceChange, PresenceRecord
from .domain import Applied, AttendeeRecord, Lifecycle, Room

Meeting = dict[str, Any]  # Chime's `Meeting` object, exactly as CreateMeeting returns it
Attendee = dict[str, Any]  # Chime's `Attendee` object, exactly as CreateAttendee returns it
EventKey = tuple[str, str]  # (consumer, event_id): what the inbox records


@dataclass(frozen=True)
class AttendeeWrite:
    record: AttendeeRecord
    expires_at: int
    replaces: str | None  # the attendee id read (None: there was no row)
    events: Sequence[Envelope]


@dataclass(frozen=True)
class MeetingRef:
    """Which room a Chime meeting was created for (kept after it ended)."""

    meeting_id: str
    room_id: str
    ended: bool = False


@dataclass(frozen=True)
class PresenceWrite:
    """What Chime's events of one meeting changed, to write in one transaction,
    on condition that nothing it read has moved since."""

    room: Room  # as read
    meeting_id: str
    changes: Sequence[PresenceChange]  # one per attendee: first `before`, last `after`
    attendee_count: int | None  # the room's new count (None: it does not move)
    end_meeting: bool  # Chime ended the room's current meeting: forget it
    meeting_ended: bool  # Chime ended this meeting (current or not): remember that
    events: Sequence[Envelope]


@dataclass(frozen=True)
class Delivery:
    """One message of the meeting-events queue."""

    message_id: str
    body: str
    receipt: str
    receive_count: int


class MeetingEventQueue(Protocol):
    """The SQS queue EventBridge delivers Chime's meeting events to."""

    async def receive(self) -> list[Delivery]:
        """Up to a batch of messages, waiting for them (long polling)."""
        ...

    async def delete(self, deliveries: Sequence[Delivery]) -> None:
        """Done with these (after their changes committed)."""
        ...

    async def retry_soon(self, delivery: Delivery) -> None:
        """Visible again at once: the queue's redrive policy counts the receive and
        moves a message that keeps failing to its dead-letter queue."""
        ...


class MeetingGone(Exception):
    """Chime says the meeting does not exist (it ended)."""


class AttendeeRefused(Exception):
    """Chime refused this attendee (e.g. the meeting is at capacity)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class MeetingGateway(Protocol):
    """Chime SDK meetings. Throttling and 5xx that outlive the client's retries
    raise `domain.MeetingUnavailable`."""

    async def create_meeting(
        self, *, request_token: str, external_meeting_id: str, media_region: str
    ) -> Meeting: ...

    async def create_attendees(
        self, meeting_id: str, external_user_ids: Sequence[str]
    ) -> Mapping[str, Attendee | AttendeeRefused]:
        """THE join path: one call for any number of users (CreateAttendee for
        one, BatchCreateAttendee for up to 100). Raises `MeetingGone`."""
        ...

    async def delete_attendee(self, meeting_id: str, attendee_id: str) -> None:
        """Idempotent: an attendee or meeting that is gone is fine."""
        ...

    async def delete_meeting(self, meeting_id: str) -> None:
        """Idempotent: a meeting that is gone is fine."""
        ...


class RoomStore(Protocol):
    """Rooms' read model, meetings and attendees. Every write that others must
    hear about takes its `events` and commits them with the state (outbox); a
    write that keeps racing other transactions raises `domain.room_busy()`."""

    # --- reads -------------------------------------------------------------

    async def room(self, room_id: str) -> Room | None: ...

    async def room_and_attendees(
        self, room_id: str, user_ids: Sequence[str]
    ) -> tuple[Room | None, dict[str, AttendeeRecord]]:
        """The room and these users' attendee rows, in one round trip for up to
        99 users (the join path)."""
        ...

    async def attendee(self, room_id: str, user_id: str) -> AttendeeRecord | None: ...

    async def active_rooms(self, now: float) -> list[Room]:
        """Active rooms that have started and not ended at `now`, by a keyed
        query (never a scan), soonest start first."""
        ...

    async def attendees(self, room_id: str) -> list[AttendeeRecord]: ...

    # --- presence (Chime's meeting events) ------------------------------------

    async def meeting_presence(
        self, meeting_id: str, attendee_ids: Sequence[str]
    ) -> tuple[MeetingRef | None, dict[str, PresenceRecord]]:
        """The meeting's room and these attendees' presence, in one round trip."""
        ...

    async def presence(self, meeting_id: str) -> list[PresenceRecord]:
        """Every attendee of the meeting that rooms created."""
        ...

    async def save_presence(self, write: PresenceWrite) -> bool:
        """The changes, the room's count and the events in one transaction; False
        (nothing written) when a presence row or the room's count moved since
        they were read, or the room's meeting is no longer this one."""
        ...

    # --- the scheduler's events --------------------------------------------

    async def apply(
        self, change: Lifecycle, *, once: EventKey, events: Sequence[Envelope] = ()
    ) -> Applied:
        """Move the room to `change.status` unless it has moved past it (a
        terminal state wins; an older RoomScheduled never overwrites a newer
        one), with the inbox record and `events` (only if applied) in the same
        transaction."""
        ...

    async def forget_meeting(self, room_id: str, meeting_id: str) -> None:
        """Drop the cached meeting of an ended room, if it is still that one."""
        ...

    # --- find-or-create of the meeting ---------------------------------------

    async def take_lease(
        self, room_id: str, owner: str, now: int, until: int, stale_meeting_id: str | None
    ) -> bool:
        """Claim the right to create the room's next meeting: only while the room
        is active, has no meeting (or still exactly the stale one) and no live
        lease. True if this caller won."""
        ...

    async def release_lease(self, room_id: str, owner: str) -> None: ...

    async def save_meeting(
        self,
        room_id: str,
        owner: str,
        meeting: Meeting,
        generation: int,
        events: Sequence[Envelope],
    ) -> bool:
        """Record the new meeting (and which room it is for), its count at 0:
        False (nothing written) unless this caller still holds the lease and
        the room is still active."""
        ...

    # --- attendees -----------------------------------------------------------

    async def save_attendees(self, writes: Sequence[AttendeeWrite]) -> set[str]:
        """Each user's attendee row and its presence row (not connected yet) with
        their events, in as few transactions as fit (up to 100 items each). A
        row is written only if it is still the one the caller read
        (`replaces`); returns the users whose row a concurrent join wrote first
        (those are left as they are)."""
        ...

    async def remove_attendee(
        self, room_id: str, user_id: str, attendee_id: str, events: Sequence[Envelope]
    ) -> bool:
        """The row gone, with the events; False when the row is no longer that
        attendee (a concurrent leave). The count moves with Chime's events."""
        ...
