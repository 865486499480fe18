"""Find-or-create of a room's meeting, driven directly: rooms' real tables on
moto, a recording fake of Chime whose failures the test decides, and the
memory bus. The races and failures that are hard to provoke over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from services.rooms.adapters.dynamo import DynamoRooms
from services.rooms.adapters.rows import TABLES
from services.rooms.attendance import Attendance
from services.rooms.domain import (
    Lifecycle,
    MeetingUnavailable,
    RoomDetails,
    RoomFull,
    RoomNotActive,
    RoomNotFound,
    external_meeting_id,
    external_user_id,
    meeting_request_token,
)
from services.rooms.meetings import Meetings
from shared.aws import AwsClients
from shared.bus import MemoryBroker
from shared.bus.memory import MemoryBus
from shared.dynamo import TransactionConflict, ensure_tables
from shared.events import decode
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.store import Store
from tests.rooms.fakes import FakeChime


@dataclass
class World:
    attendance: Attendance
    chime: FakeChime
    store: DynamoRooms
    transactions: Store
    spy: Any

    async def activate(self, room_id: str | None = None, **overrides: Any) -> str:
        room_id = room_id or f"room-{uuid.uuid4().hex[:8]}"
        now = int(time.time())
        details: dict[str, Any] = {
            "title": "t",
            "topic": "t",
            "media_region": "us-east-1",
            "start_at": now - 5,
            "end_at": now + 3600,
            **overrides,
        }
        change = Lifecycle(room_id, "active", now * 1000, now + 7200, RoomDetails(**details))
        await self.store.apply(change, once=("test", uuid.uuid4().hex))
        return room_id

    def announced(self, event_type: str) -> list[Any]:
        events = [decode(body) for body, *_ in list(self.spy.pending._queue)]
        return [e for e in events if e.type == event_type]


@pytest.fixture
async def world(aws: AwsClients, test_id: str) -> World:
    names = await ensure_tables(
        aws.dynamodb, test_id, "rooms", (*TABLES, INBOX_TABLE, OUTBOX_TABLE)
    )
    broker = MemoryBroker()
    spy = broker.queue("spy", ("room.#",))
    bus = MemoryBus("rooms", broker=broker)
    outbox = Outbox(aws.dynamodb, names["outbox"], bus)
    transactions = Store(aws.dynamodb, inbox=Inbox(aws.dynamodb, names["inbox"]), outbox=outbox)
    store = DynamoRooms(aws.dynamodb, transactions, names)
    chime = FakeChime()
    meetings = Meetings(store, chime, wait_seconds=2.0, lease_seconds=5)
    return World(Attendance(store, chime, meetings), chime, store, transactions, spy)


async def test_concurrent_first_joins_create_one_meeting(world: World) -> None:
    room_id = await world.activate()
    answers = await asyncio.gather(*(world.attendance.join(room_id, f"u{n}") for n in range(20)))
    assert len({a["Meeting"]["MeetingId"] for a in answers}) == 1
    assert len(world.chime.created) == 1
    assert len(world.announced("MeetingStarted")) == 1
    assert len(world.announced("AttendeeJoined")) == 20


async def test_a_lapsed_lease_of_a_crashed_creator_is_taken_over(world: World) -> None:
    room_id = await world.activate()
    now = int(time.time())
    assert await world.store.take_lease(room_id, "crashed", now, now, None)  # lapses in 1 s
    started = time.monotonic()
    answer = await world.attendance.join(room_id, "ada")  # waits for the lease to lapse
    assert time.monotonic() - started < 3
    assert answer["Meeting"]["MeetingId"] == world.chime.created[0]
    room = await world.store.room(room_id)
    assert room is not None
    assert room.lease_owner is None
    assert room.meeting_generation == 1


async def test_a_live_lease_that_never_ends_gives_503_after_the_bounded_wait(
    world: World,
) -> None:
    room_id = await world.activate()
    now = int(time.time())
    assert await world.store.take_lease(room_id, "slow", now, now + 60, None)
    with pytest.raises(MeetingUnavailable) as raised:
        await world.attendance.join(room_id, "ada")
    assert raised.value.status == 503
    assert raised.value.error_code == "meeting_starting"
    assert raised.value.headers["Retry-After"]
    assert world.chime.created == []


async def test_a_failed_create_meeting_releases_the_lease_for_the_next_join(
    world: World,
) -> None:
    room_id = await world.activate()
    world.chime.fail_create_meeting = 1
    with pytest.raises(MeetingUnavailable):
        await world.attendance.join(room_id, "ada")
    room = await world.store.room(room_id)
    assert room is not None
    assert room.lease_owner is None
    answer = await world.attendance.join(room_id, "ada")
    assert answer["Meeting"]["MeetingId"] == world.chime.created[0]


async def test_a_meeting_that_stays_gone_is_retried_once_then_503(world: World) -> None:
    room_id = await world.activate()
    world.chime.gone_always = True
    with pytest.raises(MeetingUnavailable):
        await world.attendance.join(room_id, "ada")
    assert world.chime.attendee_calls == 2
    assert len(world.chime.created) == 2  # the first meeting, and one re-creation


async def test_a_room_that_ends_while_its_meeting_is_created_keeps_no_meeting(
    world: World,
) -> None:
    room_id = await world.activate()

    async def end_the_room() -> None:
        now = int(time.time())
        change = Lifecycle(room_id, "ended", now * 1000, now + 60)
        await world.store.apply(change, once=("test", uuid.uuid4().hex))

    world.chime.before_create_returns = end_the_room
    with pytest.raises(RoomNotActive):
        await world.attendance.join(room_id, "ada")
    assert world.chime.deleted == world.chime.created
    assert world.announced("MeetingStarted") == []


async def test_a_full_meeting_is_a_conflict(world: World) -> None:
    room_id = await world.activate()
    world.chime.full = True
    with pytest.raises(RoomFull) as raised:
        await world.attendance.join(room_id, "ada")
    assert raised.value.status == 409


async def test_unknown_and_inactive_rooms(world: World) -> None:
    with pytest.raises(RoomNotFound):
        await world.attendance.join("nope", "ada")
    later = await world.activate(start_at=int(time.time()) + 60)
    with pytest.raises(RoomNotActive):
        await world.attendance.join(later, "ada")
    over = await world.activate(start_at=1, end_at=int(time.time()))
    with pytest.raises(RoomNotActive):
        await world.attendance.join(over, "ada")
    assert world.chime.attendee_calls == 0


def test_chime_ids_fit_chime_s_constraints() -> None:
    assert meeting_request_token("r1", 1) == meeting_request_token("r1", 1)
    assert meeting_request_token("r1", 1) != meeting_request_token("r1", 2)
    assert len(meeting_request_token("r1", 1)) <= 64
    assert external_user_id("alice") == "alice"
    assert external_meeting_id("room-1") == "room-1"
    for odd in ("a", "x" * 65, "spaces are not ok", "emoji-\U0001f600"):
        for made in (external_user_id(odd), external_meeting_id(odd)):
            assert 2 <= len(made) <= 64
            assert made.replace("-", "").isalnum()
    assert external_user_id("a") != external_user_id("b")


def conflict() -> TransactionConflict:
    """What a commit raises when another transaction holds an item (DynamoDB's
    cancellation reason TransactionConflict; tests/unit/test_dynamo.py)."""
    return TransactionConflict([0])


async def test_transaction_conflicts_on_a_busy_room_are_retried_then_503(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = world.transactions
    real_commit = store.commit
    conflicts = {"left": 2}

    async def busy_commit(*args: Any, **kwargs: Any) -> bool:
        if conflicts["left"]:
            conflicts["left"] -= 1
            raise conflict()
        return await real_commit(*args, **kwargs)

    monkeypatch.setattr(store, "commit", busy_commit)
    room_id = await world.activate()
    answer = await world.attendance.join(room_id, "ada")  # two conflicts, then through
    assert answer["Attendee"]["ExternalUserId"] == "ada"
    assert conflicts["left"] == 0

    conflicts["left"] = 1000
    with pytest.raises(MeetingUnavailable) as raised:
        await world.attendance.join(room_id, "bob")
    assert raised.value.error_code == "room_busy"
