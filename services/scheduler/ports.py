"""What the scheduler needs from the outside world, as the domain sees it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shared.events import Envelope

from .domain import Phase, Room


@dataclass(frozen=True)
class Change:
    """One room written from `before` (None: a new room) to `after`, with the
    events that announce it; written only if the room is still at `before`."""

    before: Room | None
    after: Room
    events: Sequence[Envelope] = ()


@dataclass(frozen=True)
class DueRooms:
    rooms: list[Room]
    items_read: int  # what the keyed query read (DynamoDB's ScannedCount)
    more: bool = False


@dataclass(frozen=True)
class Page:
    rooms: list[Room]
    cursor: str | None = None


class StaleRooms(Exception):
    """Some rooms were no longer at their `before` (another writer was first)."""

    def __init__(self, room_ids: Sequence[str]) -> None:
        super().__init__(f"rooms changed meanwhile: {list(room_ids)}")
        self.room_ids = frozenset(room_ids)


class ScheduleStore(Protocol):
    async def get(self, room_id: str, *, now: float) -> Room | None:
        """The room, unless it is unknown or past its TTL (DynamoDB deletes
        expired items only "typically within a few days")."""
        ...

    async def save(self, changes: Sequence[Change], *, now: float) -> None:
        """Write every change and its events atomically (state + outbox rows),
        then publish. Raises `TitleTaken` when a new title is held by a room that
        has not ended, `StaleRooms` when a room moved on; nothing is written then."""
        ...

    async def page(self, phase: Phase, *, limit: int, cursor: str | None, now: float) -> Page: ...

    async def due(self, phase: Phase, *, now: float, limit: int) -> DueRooms:
        """Rooms in `phase` whose next transition is due at or before `now`, by a
        keyed query (never a scan), oldest first."""
        ...

    async def upcoming(self, phase: Phase, *, after: float, until: float, limit: int) -> DueRooms:
        """Rooms in `phase` whose next transition falls in the seconds after
        `after`, up to `until`, by a keyed query, soonest first."""
        ...

    async def lead(self, owner: str, *, now: float, seconds: float) -> bool:
        """Take or renew the activation lease for `seconds`: False while another
        owner holds a live one."""
        ...


@dataclass
class TickStats:
    """What one activation tick did (the benchmark and the logs read it)."""

    items_read: int = 0
    activated: int = 0
    ended: int = 0
    lost_races: int = 0
    more: bool = False  # the due query had more: tick again at once
    lags: list[float] = field(default_factory=list)
