"""The landing page as this replica last heard of it: one entry per room, merged
from `RoomUpdated`, and when a `room.updated` frame is due. Pure rules, no I/O
and no asyncio; time comes from `clock` (a fake one in tests).

Merge, per room: a count older (lower `version`) than the one held is ignored
(several rooms replicas, out-of-order delivery); a terminal status (`ended`,
`cancelled`) is final and shows 0 attendees; the status otherwise only moves
forward (scheduled -> active); the title comes from the latest event that has one.

Coalescing, per room: the first change after a quiet period is due at once;
changes within `interval_seconds` of the last frame are merged and the latest
state is due when that interval ends; a state equal to the last frame sent is
never due again. So a room costs at most one frame per interval.

Memory is bounded: at most `max_rooms` rooms (the least recently updated is
forgotten first), and a room that ended is forgotten `forget_seconds` later.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.events import RoomUpdated

ROOM_FRAME = "room.updated"
TERMINAL = frozenset({"ended", "cancelled"})
_RANK = {"scheduled": 0, "active": 1}
MAX_ROOMS = 10_000
FORGET_SECONDS = 3600.0


@dataclass(frozen=True)
class RoomView:
    """What a `room.updated` frame says of a room."""

    room_id: str
    title: str
    status: str
    attendee_count: int

    def data(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "title": self.title,
            "status": self.status,
            "attendee_count": self.attendee_count,
        }

    def frame(self) -> str:
        """No cursor: the frame is not in any feed and is never replayed."""
        return json.dumps({"type": ROOM_FRAME, "data": self.data()})


@dataclass(frozen=True)
class RoomState:
    view: RoomView
    version: int  # of the count shown
    title_version: int  # of the event the title came from

    @property
    def final(self) -> bool:
        return self.view.status in TERMINAL


def merge(held: RoomState | None, event: RoomUpdated) -> RoomState:
    """The room after `event`, given what was held of it."""
    if held is None:
        count = 0 if event.status in TERMINAL else event.attendee_count
        view = RoomView(event.room_id, event.title, event.status, count)
        return RoomState(view, event.version, event.version)
    old = held.view
    title, title_version = old.title, held.title_version
    if event.title and (event.version >= title_version or not title):
        title, title_version = event.title, max(event.version, title_version)
    if held.final:  # final: nothing but the title changes
        status, count, version = old.status, 0, held.version
    elif event.status in TERMINAL:
        status, count, version = event.status, 0, max(event.version, held.version)
    else:
        status = max(old.status, event.status, key=_RANK.__getitem__)
        if event.version < held.version:  # a count older than the one shown
            count, version = old.attendee_count, held.version
        else:
            count, version = event.attendee_count, event.version
    return RoomState(RoomView(old.room_id, title, status, count), version, title_version)


@dataclass
class _Room:
    state: RoomState
    sent: RoomView | None = None  # the last frame sent
    quiet_at: float = float("-inf")  # a change before then waits until then
    ended_at: float | None = None


class RoomBoard:
    def __init__(
        self,
        *,
        interval_seconds: float,
        max_rooms: int = MAX_ROOMS,
        forget_seconds: float = FORGET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval_seconds
        self._max_rooms = max_rooms
        self._forget = forget_seconds
        self._clock = clock
        self._rooms: OrderedDict[str, _Room] = OrderedDict()  # least recently updated first
        self._pending: dict[str, float] = {}  # room -> when its merged change is due
        self._next_sweep = clock() + forget_seconds

    def __len__(self) -> int:
        return len(self._rooms)

    def get(self, room_id: str) -> RoomView | None:
        room = self._rooms.get(room_id)
        return room.state.view if room else None

    def apply(self, event: RoomUpdated) -> RoomView | None:
        """Merge `event`; the frame to send now, if one is due now (a change
        within the room's interval is left for `due`)."""
        now = self._clock()
        room = self._rooms.get(event.room_id)
        if room is None:
            room = self._rooms[event.room_id] = _Room(merge(None, event))
            self._evict()
        else:
            room.state = merge(room.state, event)
            self._rooms.move_to_end(event.room_id)
        if room.state.final and room.ended_at is None:
            room.ended_at = now
        if now >= self._next_sweep:
            self._sweep(now)
        view = room.state.view
        if view == room.sent:
            self._pending.pop(view.room_id, None)
            return None
        if now >= room.quiet_at:
            self._pending.pop(view.room_id, None)
            return self._sent(room, now)
        self._pending[view.room_id] = room.quiet_at
        return None

    def due(self) -> list[RoomView]:
        """The merged changes whose interval has ended (each room's latest state)."""
        now = self._clock()
        frames = []
        for room_id in [r for r, at in self._pending.items() if at <= now]:
            del self._pending[room_id]
            room = self._rooms.get(room_id)
            if room is not None and room.state.view != room.sent:
                frames.append(self._sent(room, now))
        return frames

    def seconds_until_due(self) -> float | None:
        """How long until `due` has something (None: nothing is waiting)."""
        if not self._pending:
            return None
        return max(0.0, min(self._pending.values()) - self._clock())

    def _sent(self, room: _Room, now: float) -> RoomView:
        room.sent = room.state.view
        room.quiet_at = now + self._interval
        return room.sent

    def _evict(self) -> None:
        while len(self._rooms) > self._max_rooms:
            room_id, _ = self._rooms.popitem(last=False)
            self._pending.pop(room_id, None)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._forget / 10
        stale = [
            room_id
            for room_id, room in self._rooms.items()
            if room.ended_at is not None
            and room.ended_at + self._forget <= now
            and room_id not in self._pending
        ]
        for room_id in stale:
            del self._rooms[room_id]
