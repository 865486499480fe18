"""Event handlers: the scheduler's room lifecycle into rooms' read model, and
rooms' own attendance events into the landing page's attendee counts.

Each handled event writes its state and its inbox record in one
TransactWriteItems (`RoomStore.apply` / `count`). A change the row has
already moved past (an out-of-order or stale event) records only the inbox
row. Ending a room also deletes its Chime meeting, on every delivery.
"""

from __future__ import annotations

from shared.clock import Clock
from shared.events import (
    AttendeeJoined,
    AttendeeLeft,
    Envelope,
    MeetingStarted,
    RoomActivated,
    RoomCancelled,
    RoomEnded,
    RoomScheduled,
)
from shared.logging import get_logger
from shared.topology import HandlerTable

from .domain import ACTIVE, CANCELLED, ENDED, SCHEDULED, Lifecycle, RoomDetails
from .meetings import close_meeting
from .ports import MeetingGateway, RoomStore

log = get_logger("belfry.rooms")

SCHEDULE_QUEUE = "rooms.schedule"
ATTENDANCE_QUEUE = "rooms.attendance"


def _details(event: RoomScheduled | RoomActivated) -> RoomDetails:
    return RoomDetails(
        title=event.title,
        topic=event.topic,
        media_region=event.media_region,
        start_at=event.start_at,
        end_at=event.end_at,
    )


async def _apply(rooms: RoomStore, envelope: Envelope, change: Lifecycle) -> None:
    applied = await rooms.apply(change, once=(SCHEDULE_QUEUE, envelope.event_id))
    log.info("room.event", room_id=change.room_id, status=change.status, applied=applied)


def _change(
    room_id: str, status: str, envelope: Envelope, expires_at: int, details: RoomDetails | None
) -> Lifecycle:
    event_ms = int(envelope.occurred_at.timestamp() * 1000)
    return Lifecycle(room_id, status, event_ms, expires_at, details)


async def on_room_scheduled(
    event: RoomScheduled, envelope: Envelope, *, rooms: RoomStore, retention_seconds: int
) -> None:
    expires_at = event.end_at + retention_seconds
    await _apply(
        rooms, envelope, _change(event.room_id, SCHEDULED, envelope, expires_at, _details(event))
    )


async def on_room_activated(
    event: RoomActivated, envelope: Envelope, *, rooms: RoomStore, retention_seconds: int
) -> None:
    expires_at = event.end_at + retention_seconds
    await _apply(
        rooms, envelope, _change(event.room_id, ACTIVE, envelope, expires_at, _details(event))
    )


FINISHED: dict[type[RoomEnded | RoomCancelled], str] = {RoomEnded: ENDED, RoomCancelled: CANCELLED}


async def on_room_finished(
    event: RoomEnded | RoomCancelled,
    envelope: Envelope,
    *,
    rooms: RoomStore,
    chime: MeetingGateway,
    retention_seconds: int,
    clock: Clock,
) -> None:
    """Ended or cancelled: unlisted for good, and its Chime meeting deleted (on
    every delivery, so a DeleteMeeting that failed is retried)."""
    expires_at = int(clock()) + retention_seconds
    status = FINISHED[type(event)]
    await _apply(rooms, envelope, _change(event.room_id, status, envelope, expires_at, None))
    await close_meeting(event.room_id, store=rooms, chime=chime)


async def on_attendee_joined(
    event: AttendeeJoined, envelope: Envelope, *, rooms: RoomStore
) -> None:
    await rooms.count(event.room_id, 1, once=(ATTENDANCE_QUEUE, envelope.event_id))


async def on_attendee_left(event: AttendeeLeft, envelope: Envelope, *, rooms: RoomStore) -> None:
    await rooms.count(event.room_id, -1, once=(ATTENDANCE_QUEUE, envelope.event_id))


async def on_meeting_started(event: MeetingStarted, envelope: Envelope) -> None:
    """Bound to the attendance queue (every publish must be routable); a new
    meeting has no attendees to count yet."""


HANDLERS: HandlerTable = {
    SCHEDULE_QUEUE: {
        RoomScheduled: on_room_scheduled,
        RoomActivated: on_room_activated,
        RoomEnded: on_room_finished,
        RoomCancelled: on_room_finished,
    },
    ATTENDANCE_QUEUE: {
        MeetingStarted: on_meeting_started,
        AttendeeJoined: on_attendee_joined,
        AttendeeLeft: on_attendee_left,
    },
}
