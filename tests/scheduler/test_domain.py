"""The schedule's rules and the activation loop's claiming, without I/O: the
loop runs over a recording fake store that keeps rooms in a dict and refuses
writes from a stale revision, as DynamoDB's conditions do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import pytest

from services.scheduler.activation import Activator
from services.scheduler.adapters.dynamo import (
    PAGE_KEY,
    DynamoSchedule,
    room_from_item,
    room_item,
)
from services.scheduler.domain import (
    MEDIA_REGIONS,
    Phase,
    Room,
    RoomAlreadyCancelled,
    RoomAlreadyEnded,
    RoomAlreadyStarted,
    RoomChanges,
    RoomDraft,
    Rules,
    StartInPast,
    StartTooFar,
    TitleTaken,
    activate,
    cancel_room,
    cancelled_events,
    change_room,
    end,
    new_room,
    scheduled_event,
    title_key,
)
from services.scheduler.ports import Change, DueRooms, Page, StaleRooms
from shared.dynamo import TransactionConflict
from shared.pages import InvalidCursor, decode_cursor, encode_cursor
from shared.store import Store

NOW = 1_800_000_000
RULES = Rules(start_grace_seconds=60, max_lead_seconds=86400)


def draft(**overrides) -> RoomDraft:
    values: dict[str, Any] = {
        "title": "  Maths   101 ",
        "start_at": NOW + 600,
        "duration_minutes": 45,
        "topic": "t",
        "media_region": "eu-west-2",
    }
    values.update(overrides)
    return RoomDraft(**values)


def test_media_regions_are_chimes() -> None:
    assert len(MEDIA_REGIONS) == 22
    assert {"us-east-1", "eu-south-1", "il-central-1", "us-gov-west-1"} <= MEDIA_REGIONS
    assert "cn-north-1" not in MEDIA_REGIONS


def test_a_new_room_and_its_announcement() -> None:
    room = new_room(draft(), by="ada", now=NOW, rules=RULES, room_id="r1")
    assert room.title == "Maths 101"
    assert room.title_key == title_key("maths 101") == "maths 101"
    assert (room.phase, room.revision, room.end_at) == (Phase.SCHEDULED, 1, NOW + 600 + 2700)
    assert room.due_at == room.start_at
    assert room.expires_at(3600) == room.end_at + 3600
    event = scheduled_event(room)
    assert event.type == "RoomScheduled"
    assert event.data.model_dump()["revision"] == 1
    assert scheduled_event(room).event_id == event.event_id  # derived, stable


@pytest.mark.parametrize(
    ("start", "error"),
    [(NOW - 61, StartInPast), (NOW + 86401, StartTooFar), (10**10, StartTooFar)],
)
def test_starts_out_of_bounds(start, error) -> None:
    with pytest.raises(error):
        new_room(draft(start_at=start), by="ada", now=NOW, rules=RULES)


def test_a_start_within_the_grace_is_accepted() -> None:
    assert new_room(draft(start_at=NOW - 60), by="a", now=NOW, rules=RULES).start_at == NOW - 60


def test_changes_only_before_the_start() -> None:
    room = new_room(draft(), by="ada", now=NOW, rules=RULES)
    moved = change_room(room, RoomChanges(start_at=NOW + 60), now=NOW, rules=RULES)
    assert (moved.start_at, moved.revision, moved.title) == (NOW + 60, 2, room.title)
    with pytest.raises(StartInPast):
        change_room(room, RoomChanges(start_at=NOW - 3600), now=NOW, rules=RULES)
    with pytest.raises(RoomAlreadyStarted):
        change_room(room, RoomChanges(topic="x"), now=room.start_at, rules=RULES)
    with pytest.raises(RoomAlreadyStarted):
        change_room(activate(room, now=room.start_at), RoomChanges(topic="x"), now=NOW, rules=RULES)
    cancelled = cancel_room(room, by="bo", now=NOW)
    with pytest.raises(RoomAlreadyCancelled):
        change_room(cancelled, RoomChanges(topic="x"), now=NOW, rules=RULES)


def test_the_life_of_a_room() -> None:
    room = new_room(draft(), by="ada", now=NOW, rules=RULES)
    with pytest.raises(ValueError, match="not due"):
        activate(room, now=room.start_at - 1)
    active = activate(room, now=room.start_at)
    assert (active.phase, active.due_at) == (Phase.ACTIVE, room.end_at)
    with pytest.raises(ValueError, match="not due"):
        end(active, now=room.end_at - 1)
    ended = end(active, now=room.end_at + 5)
    assert (ended.phase, ended.ended_at, ended.revision) == (Phase.ENDED, room.end_at, 3)
    assert not ended.holds_title
    with pytest.raises(RoomAlreadyEnded):
        cancel_room(ended, by="bo", now=NOW)


def test_cancelling_an_active_room_ends_it_too() -> None:
    room = new_room(draft(), by="ada", now=NOW, rules=RULES)
    active = activate(room, now=room.start_at)
    cancelled = cancel_room(active, by="bo", now=room.start_at + 10)
    events = cancelled_events(active, cancelled)
    assert [e.type for e in events] == ["RoomCancelled", "RoomEnded"]
    assert events[1].data.model_dump() == {"room_id": room.room_id, "ended_at": room.start_at + 10}
    scheduled_only = cancelled_events(room, cancel_room(room, by="bo", now=NOW))
    assert [e.type for e in scheduled_only] == ["RoomCancelled"]
    with pytest.raises(RoomAlreadyCancelled):
        cancel_room(cancelled, by="bo", now=NOW)


def test_a_room_survives_its_item() -> None:
    room = new_room(draft(), by="ada", now=NOW, rules=RULES, correlation_id="c1")
    for state in (room, cancel_room(activate(room, now=room.start_at), by="b", now=room.start_at)):
        item = room_item(state, 3600)
        assert set(item) == {"room_id", "phase", "due_key", "revision", "expires_at", "room"}
        assert room_from_item(item) == state


def test_cursors_belong_to_their_listing() -> None:
    key = {"room_id": {"S": "r1"}, "phase": {"S": "ended"}, "due_key": {"S": "1#r1"}}
    cursor = encode_cursor(key)
    assert cursor is not None

    def ended(token: str) -> object:
        return decode_cursor(token, names=PAGE_KEY, fixed={"phase": Phase.ENDED.value})

    assert ended(cursor) == key
    of_active = encode_cursor({**key, "phase": {"S": "active"}}) or ""
    for bad in (cursor + "x", "e30", "!!!", of_active):
        with pytest.raises(InvalidCursor):
            ended(bad)


class FakeStore:
    """Rooms in a dict; `save` is all-or-nothing and refuses stale revisions.
    `rival` claims a room just before the loop's write (another replica)."""

    def __init__(self, rooms: Sequence[Room]) -> None:
        self.rooms = {r.room_id: r for r in rooms}
        self.published: list[str] = []
        self.rival: set[str] = set()
        self.items_read = 0
        self.due_queries = 0
        self.lease: tuple[str, float] | None = None  # owner, until

    async def get(self, room_id: str, *, now: float) -> Room | None:
        return self.rooms.get(room_id)

    async def save(self, changes: Sequence[Change], *, now: float) -> None:
        for room_id in self.rival & {c.after.room_id for c in changes}:
            self.rooms[room_id] = replace(self.rooms[room_id], revision=99, phase=Phase.ACTIVE)
        self.rival.clear()
        stale = [
            c.after.room_id
            for c in changes
            if c.before is not None and self.rooms[c.after.room_id] != c.before
        ]
        if stale:
            raise StaleRooms(stale)
        for change in changes:
            self.rooms[change.after.room_id] = change.after
            self.published += [f"{e.type}:{change.after.room_id}" for e in change.events]

    async def page(self, phase, *, limit, cursor, now) -> Page:
        return Page([r for r in self.rooms.values() if r.phase is phase][:limit])

    async def due(self, phase: Phase, *, now: float, limit: int) -> DueRooms:
        due = sorted(
            (r for r in self.rooms.values() if r.phase is phase and r.due_at <= now),
            key=lambda r: r.due_at,
        )
        self.items_read += len(due[:limit])
        self.due_queries += 1
        return DueRooms(due[:limit], len(due[:limit]), more=len(due) > limit)

    async def upcoming(self, phase: Phase, *, after: float, until: float, limit: int) -> DueRooms:
        soon = sorted(
            (
                r
                for r in self.rooms.values()
                if r.phase is phase and int(after) < r.due_at <= int(until)
            ),
            key=lambda r: r.due_at,
        )[:limit]
        return DueRooms(soon, len(soon))

    async def lead(self, owner: str, *, now: float, seconds: float) -> bool:
        if self.lease is not None and self.lease[0] != owner and self.lease[1] >= now:
            return False
        self.lease = (owner, now + seconds)
        return True


def room(i: int, start: int, minutes: int = 1) -> Room:
    return new_room(
        draft(title=f"r{i}", start_at=start, duration_minutes=minutes),
        by="ada",
        now=NOW,
        rules=RULES,
        room_id=f"r{i}",
    )


async def test_a_tick_claims_what_is_due_and_leaves_the_rest() -> None:
    now = [float(NOW + 100)]
    store = FakeStore([room(1, NOW + 50), room(2, NOW + 100), room(3, NOW + 101)])
    loop = Activator(store, clock=lambda: now[0], rooms_per_transaction=1)
    stats = await loop.tick()
    assert (stats.activated, stats.ended, stats.items_read) == (2, 0, 2)
    assert store.published == ["RoomActivated:r1", "RoomActivated:r2"]
    assert (await loop.tick()).items_read == 0

    now[0] = NOW + 50 + 60  # r1's end; r3 has started meanwhile
    stats = await loop.tick()
    assert (stats.activated, stats.ended) == (1, 1)
    assert store.published[2:] == ["RoomActivated:r3", "RoomEnded:r1"]


async def test_rooms_claimed_by_another_replica_are_dropped_not_repeated() -> None:
    store = FakeStore([room(i, NOW) for i in range(10)])
    store.rival = {"r3", "r7"}
    loop = Activator(store, clock=lambda: NOW + 1, rooms_per_transaction=10)
    stats = await loop.tick()
    assert stats.lost_races == 2
    assert stats.activated == 8
    assert sorted(store.published) == sorted(
        f"RoomActivated:r{i}" for i in range(10) if i not in (3, 7)
    )


async def test_a_room_missed_entirely_is_activated_then_ended_in_one_tick() -> None:
    store = FakeStore([room(1, NOW)])
    loop = Activator(store, clock=lambda: NOW + 3600)
    stats = await loop.tick()
    assert (stats.activated, stats.ended) == (1, 1)
    assert store.published == ["RoomActivated:r1", "RoomEnded:r1"]


async def test_pages_of_due_rooms_say_there_is_more() -> None:
    store = FakeStore([room(i, NOW) for i in range(7)])
    loop = Activator(store, clock=lambda: NOW, due_per_tick=3)
    first = await loop.tick()
    assert (first.activated, first.more) == (3, True)
    while (await loop.tick()).more:
        pass
    assert len(store.published) == 7


class ConflictingStore:
    """A `Store` whose transaction DynamoDB cancels for a race on item `at`."""

    def __init__(self, at: int) -> None:
        self.at = at

    async def commit(self, items, *, events=(), once=None, token=None) -> bool:
        raise TransactionConflict([self.at])  # what `shared.dynamo.transact` raises


@pytest.mark.parametrize(("at", "error"), [(0, StaleRooms), (1, TitleTaken)])
async def test_a_transaction_that_lost_a_race_is_a_lost_claim(at, error) -> None:
    schedule = DynamoSchedule(
        cast(Any, None),
        cast(Store, ConflictingStore(at)),
        rooms_table="rooms",
        titles_table="titles",
        leases_table="leases",
        retention_seconds=60,
    )
    new = room(1, NOW + 60)
    with pytest.raises(error):  # item 0: the room, item 1: its title claim
        await schedule.save([Change(None, new, [scheduled_event(new)])], now=NOW)


async def test_one_replica_leads_and_another_takes_over_when_its_lease_lapses() -> None:
    now = [float(NOW)]
    store = FakeStore([room(1, NOW + 100)])
    first = Activator(store, clock=lambda: now[0], owner="a", lease_seconds=5)
    second = Activator(store, clock=lambda: now[0], owner="b", lease_seconds=5)
    assert await first.step() is not True
    assert first.leading
    standby = await second.step()
    assert not second.leading
    assert standby == pytest.approx(5 / 3)  # the standby looks again in a third of the lease
    now[0] += 4  # the leader renews within its lease
    await first.step()
    now[0] += 6  # and then stops: its lease lapses
    await second.step()
    assert second.leading
    now[0] = NOW + 100
    await second.step()
    assert store.published == ["RoomActivated:r1"]


async def test_rooms_due_soon_are_read_ahead_and_claimed_at_their_second() -> None:
    now = [float(NOW)]
    store = FakeStore([room(i, NOW + 3) for i in range(5)] + [room(9, NOW + 60)])
    loop = Activator(store, clock=lambda: now[0], lookahead_seconds=10, tick_seconds=0.25)
    await loop.step()
    assert sorted(r.room_id for r in loop._soon[Phase.SCHEDULED].values()) == [
        f"r{i}" for i in range(5)
    ]
    assert loop.seconds_to_next() == 0.25  # more than a tick away
    now[0] = NOW + 2.9
    assert loop.seconds_to_next() == pytest.approx(0.1)  # wakes at the second itself
    queries = store.due_queries
    now[0] = NOW + 3
    assert await loop.step() is True  # claimed without querying their phase; leftovers next
    assert store.due_queries == queries + 1  # only the other phase (ends) was queried
    assert sorted(store.published) == [f"RoomActivated:r{i}" for i in range(5)]
    await loop.step()
    assert store.due_queries == queries + 3  # the leftovers' query, per phase


async def test_a_room_changed_after_it_was_read_ahead_is_claimed_as_it_is_now() -> None:
    now = [float(NOW)]
    store = FakeStore([room(1, NOW + 3)])
    loop = Activator(store, clock=lambda: now[0], lookahead_seconds=10)
    await loop.step()
    changed = replace(store.rooms["r1"], topic="new", revision=2)
    store.rooms["r1"] = changed  # a PATCH after the read-ahead
    now[0] = NOW + 3
    while (await loop.tick()).more:
        pass
    assert store.published == ["RoomActivated:r1"]
    assert store.rooms["r1"].phase is Phase.ACTIVE
    assert store.rooms["r1"].topic == "new"
