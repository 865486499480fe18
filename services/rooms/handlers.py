"""Event handlers: the scheduler's room lifecycle into rooms' read model.

Each handled event writes its state and its inbox record in one
TransactWriteItems (`RoomStore.apply`). A change the row has
already moved past (an out-of-order or stale event) records only the inbox
row. Ending a room also deletes its Chime meeting, on every delivery. A
change the landing page shows (activated, ended, cancelled) is announced as
RoomUpdated in the same transaction.
"""

from __future__ import annotations

from dataclasses import replace

from shared.clock import Clock
from shared.events import (
    AttendeeJoined,
    AttendeeLeft,
    AttendeePresenceChanged,
    Envelope,
    EventData,
    MeetingEnded,
    MeetingStarted,
    RoomActivated,
    RoomCancelled,
    RoomEnded,
    RoomScheduled,
    RoomUpdated,
)
from shared.logging import get_logger
from shared.topology import HandlerTable

from .domain import ACTIVE, CANCELLED, ENDED, SCHEDULED, Lifecycle, Room, RoomDetails, announce
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


async def _apply(
    rooms: RoomStore, envelope: Envelope, change: Lifecycle, shown: Room | None = None
) -> None:
    """`shown`: the room as the landing page shows it once the change applied."""
    events = [] if shown is None else [announce(shown.updated())]
    applied = await rooms.apply(change, once=(SCHEDULE_QUEUE, envelope.event_id), events=events)
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
    change = _change(event.room_id, ACTIVE, envelope, expires_at, _details(event))
    shown = Room(event.room_id, ACTIVE, title=event.title)  # nobody is connected yet
    await _apply(rooms, envelope, change, shown)


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
    room = await rooms.room(event.room_id)
    shown = None if room is None else replace(room, status=status)
    await _apply(rooms, envelope, _change(event.room_id, status, envelope, expires_at, None), shown)
    await close_meeting(event.room_id, store=rooms, chime=chime)


async def on_attendance(event: EventData, envelope: Envelope) -> None:
    """rooms' own attendance events are bound to this queue so that every
    publish is routable; the state they announce moved in the transaction
    that announced them, so there is nothing left to do here."""


HANDLERS: HandlerTable = {
    SCHEDULE_QUEUE: {
        RoomScheduled: on_room_scheduled,
        RoomActivated: on_room_activated,
        RoomEnded: on_room_finished,
        RoomCancelled: on_room_finished,
    },
    ATTENDANCE_QUEUE: {
        MeetingStarted: on_attendance,
        AttendeeJoined: on_attendance,
        AttendeeLeft: on_attendance,
        AttendeePresenceChanged: on_attendance,
        MeetingEnded: on_attendance,
        RoomUpdated: on_attendance,
    },
}
