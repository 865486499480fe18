"""The admin's use cases: schedule, read, list, change and cancel rooms."""

from __future__ import annotations

from shared.clock import Clock
from shared.logging import current_correlation_id, get_logger

from .domain import (
    ConcurrentChange,
    Phase,
    Room,
    RoomChanges,
    RoomDraft,
    RoomNotFound,
    Rules,
    cancel_room,
    cancelled_events,
    change_room,
    new_room,
    scheduled_event,
)
from .ports import Change, Page, ScheduleStore, StaleRooms

log = get_logger("belfry.scheduler")

_ATTEMPTS = 3  # reads and conditional writes of one request racing other writers


class Schedule:
    def __init__(
        self, store: ScheduleStore, *, clock: Clock, rules: Rules, page_size: int = 50
    ) -> None:
        self.store = store
        self.clock = clock
        self.rules = rules
        self.page_size = page_size

    async def schedule(self, draft: RoomDraft, *, by: str) -> Room:
        now = self.clock()
        room = new_room(
            draft, by=by, now=now, rules=self.rules, correlation_id=current_correlation_id()
        )
        await self.store.save([Change(None, room, [scheduled_event(room)])], now=now)
        log.info("room.scheduled", room_id=room.room_id, start_at=room.start_at)
        return room

    async def get(self, room_id: str) -> Room:
        room = await self.store.get(room_id, now=self.clock())
        if room is None:
            raise RoomNotFound(f"no room {room_id}")
        return room

    async def page(self, phase: Phase, *, limit: int, cursor: str | None) -> Page:
        return await self.store.page(phase, limit=limit, cursor=cursor, now=self.clock())

    async def change(self, room_id: str, changes: RoomChanges) -> Room:
        """Re-time or rename a room before its start; the new times re-time its
        activation (the loop only ever reads the room's current `due_key`)."""
        for _ in range(_ATTEMPTS):
            before = await self.get(room_id)
            now = self.clock()
            after = change_room(before, changes, now=now, rules=self.rules)
            if changes.is_empty() or _same(before, after):
                return before
            try:
                await self.store.save([Change(before, after, [scheduled_event(after)])], now=now)
            except StaleRooms:
                continue  # read again: it may have started meanwhile (409 room_started)
            log.info(
                "room.changed", room_id=room_id, start_at=after.start_at, revision=after.revision
            )
            return after
        raise ConcurrentChange(f"room {room_id} keeps changing; read it again")

    async def cancel(self, room_id: str, *, by: str) -> Room:
        for _ in range(_ATTEMPTS):
            before = await self.get(room_id)
            now = self.clock()
            after = cancel_room(before, by=by, now=now)
            try:
                await self.store.save(
                    [Change(before, after, cancelled_events(before, after))], now=now
                )
            except StaleRooms:
                continue  # activated or changed meanwhile: cancel what it is now
            log.info("room.cancelled", room_id=room_id, was=before.phase.value)
            return after
        raise ConcurrentChange(f"room {room_id} keeps changing; try again")


def _same(before: Room, after: Room) -> bool:
    fields = ("title", "topic", "start_at", "duration_minutes", "media_region")
    return all(getattr(before, f) == getattr(after, f) for f in fields)
