"""What rooms needs from the outside, as Protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.events import Envelope

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

    # --- the scheduler's events --------------------------------------------

    async def apply(self, change: Lifecycle, *, once: EventKey) -> Applied:
        """Move the room to `change.status` unless it has moved past it (a
        terminal state wins; an older RoomScheduled never overwrites a newer
        one), with the inbox record in the same transaction."""
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
        """Record the new meeting: False (nothing written) unless this caller
        still holds the lease and the room is still active."""
        ...

    # --- attendees -----------------------------------------------------------

    async def save_attendees(self, writes: Sequence[AttendeeWrite]) -> set[str]:
        """Each user's attendee row with its events, in as few transactions as
        fit (up to 100 items each), the room's attendee count moved in the same
        transaction. A row is written only if it is still the one the caller
        read (`replaces`); returns the users whose row a concurrent join wrote
        first (those are left as they are)."""
        ...

    async def remove_attendee(
        self, room_id: str, user_id: str, attendee_id: str, events: Sequence[Envelope]
    ) -> bool:
        """The row gone and the room's count down by one, with the events; False
        when the row is no longer that attendee (a concurrent leave)."""
        ...
