"""The landing page: the rooms that are active now, each with its attendee
count, from rooms' own read model of the scheduler's rooms."""

from __future__ import annotations

import time

from shared.clock import Clock

from .domain import Room, RoomNotFound
from .ports import RoomStore


class Listing:
    def __init__(self, store: RoomStore, *, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock

    async def active(self) -> list[Room]:
        return await self.store.active_rooms(self.clock())

    async def get(self, room_id: str) -> Room:
        room = await self.store.room(room_id)
        if room is None:
            raise RoomNotFound(f"no room {room_id}")
        return room
