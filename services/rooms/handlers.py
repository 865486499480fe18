"""Event handlers: the scheduler's room lifecycle into rooms' read model, and
rooms' own attendance events into the landing page's attendee counts.

Each handled event writes its state and its inbox record in one
TransactWriteItems. A state change the row has already moved past (an
out-of-order or stale event) records only the inbox row. Ending a room also
deletes its Chime meeting; that cleanup runs again on every redelivery, so
a DeleteMeeting that failed is retried even though the state is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.rooms.adapters.dynamo import RoomTables, retry_conflicts
from services.rooms.domain import CANCELLED, ENDED, TERMINAL
from services.rooms.ports import MeetingGateway
from shared.bus import RejectEvent, Subscription
from shared.dynamo import ConditionFailed, TransactItem
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
from shared.store import Store
from shared.topology import subscription

log = get_logger("belfry.rooms")

SCHEDULE_QUEUE = "rooms.schedule"
ATTENDANCE_QUEUE = "rooms.attendance"


class RoomEvents:
    def __init__(
        self,
        tables: RoomTables,
        store: Store,
        chime: MeetingGateway,
        *,
        retention_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tables = tables
        self.store = store
        self.chime = chime
        self.retention = retention_seconds
        self.clock = clock

    def subscriptions(self) -> list[Subscription]:
        return [
            subscription(SCHEDULE_QUEUE, self.on_room_event),
            subscription(ATTENDANCE_QUEUE, self.on_attendance),
        ]

    async def on_room_event(self, envelope: Envelope) -> None:
        data = envelope.data
        event_ms = int(envelope.occurred_at.timestamp() * 1000)
        room_id: str
        item: TransactItem
        if isinstance(data, RoomScheduled):
            room_id = data.room_id
            item = self.tables.scheduled(data.model_dump(), event_ms, data.end_at + self.retention)
        elif isinstance(data, RoomActivated):
            room_id = data.room_id
            item = self.tables.activated(data.model_dump(), event_ms, data.end_at + self.retention)
        elif isinstance(data, RoomEnded | RoomCancelled):
            room_id = data.room_id
            status = ENDED if isinstance(data, RoomEnded) else CANCELLED
            expires_at = int(self.clock()) + self.retention
            item = self.tables.finished(room_id, status, event_ms, expires_at)
        else:
            raise RejectEvent("unexpected_event", f"{envelope.type} on {SCHEDULE_QUEUE}")
        applied = await self._commit(SCHEDULE_QUEUE, envelope, item)
        log.info("room.event", room_id=room_id, applied=applied)
        if isinstance(data, RoomEnded | RoomCancelled):
            await self._close_meeting(room_id)

    async def _close_meeting(self, room_id: str) -> None:
        room = await self.tables.room(room_id)
        if room is None or room.status not in TERMINAL or room.meeting_id is None:
            return
        await self.chime.delete_meeting(room.meeting_id)  # NotFound is fine
        await self.tables.forget_meeting(room_id, room.meeting_id)
        log.info("meeting.deleted", room_id=room_id, meeting_id=room.meeting_id)

    async def on_attendance(self, envelope: Envelope) -> None:
        data = envelope.data
        if isinstance(data, MeetingStarted):
            return  # bound to this queue by the topology; nothing to count
        if isinstance(data, AttendeeJoined):
            delta = 1
        elif isinstance(data, AttendeeLeft):
            delta = -1
        else:
            raise RejectEvent("unexpected_event", f"{envelope.type} on {ATTENDANCE_QUEUE}")
        await self._commit(ATTENDANCE_QUEUE, envelope, self.tables.count(data.room_id, delta))

    async def _commit(self, consumer: str, envelope: Envelope, item: TransactItem) -> str:
        """'applied', 'duplicate' (the inbox has it) or 'superseded' (the row has
        moved past this event: only the inbox record is written)."""
        once = (consumer, envelope.event_id)
        try:
            applied = await retry_conflicts(lambda: self.store.commit([item], once=once))
        except ConditionFailed:
            recorded = await retry_conflicts(lambda: self.store.commit(once=once))
            return "superseded" if recorded else "duplicate"
        return "applied" if applied else "duplicate"
