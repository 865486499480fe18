"""Find-or-create of a room's meeting, driven directly: rooms' real tables on
moto, a recording fake of Chime whose failures the test decides, and the
memory bus. The races and failures that are hard to provoke over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from services.rooms.adapters.dynamo import TABLES, RoomTables, is_transaction_conflict
from services.rooms.domain import (
    MeetingUnavailable,
    RoomFull,
    RoomNotActive,
    RoomNotFound,
    external_meeting_id,
    external_user_id,
    meeting_request_token,
)
from services.rooms.joins import JoinPolicy, Joins
from services.rooms.ports import Attendee, AttendeeRefused, Meeting, MeetingGone
from shared.aws import AwsClients
from shared.bus import MemoryBroker
from shared.bus.memory import MemoryBus
from shared.dynamo import ensure_tables, transact
from shared.events import decode
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.store import Store


@dataclass
class FakeChime:
    """Chime meetings in dicts; the same request token gives the same live meeting."""

    meetings: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> user -> attendee
    tokens: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    attendee_calls: int = 0
    fail_create_meeting: int = 0  # how many CreateMeeting calls fail (throttled)
    gone_always: bool = False
    full: bool = False
    before_create_returns: Callable[[], Awaitable[None]] | None = None

    async def create_meeting(
        self, *, request_token: str, external_meeting_id: str, media_region: str
    ) -> Meeting:
        await asyncio.sleep(0.01)
        if self.fail_create_meeting:
            self.fail_create_meeting -= 1
            raise MeetingUnavailable("throttled", code="meeting_service_unavailable")
        meeting_id = self.tokens.get(request_token)
        if meeting_id is None or meeting_id not in self.meetings:
            meeting_id = str(uuid.uuid4())
            self.tokens[request_token] = meeting_id
            self.meetings[meeting_id] = {}
            self.created.append(meeting_id)
        if self.before_create_returns is not None:
            await self.before_create_returns()
        return {
            "MeetingId": meeting_id,
            "ExternalMeetingId": external_meeting_id,
            "MediaRegion": media_region,
        }

    async def create_attendees(
        self, meeting_id: str, external_user_ids: Sequence[str]
    ) -> Mapping[str, Attendee | AttendeeRefused]:
        self.attendee_calls += 1
        if self.gone_always or meeting_id not in self.meetings:
            raise MeetingGone(meeting_id)
        result: dict[str, Attendee | AttendeeRefused] = {}
        for user in external_user_ids:
            if self.full:
                result[user] = AttendeeRefused("LimitExceededException", "full")
                continue
            attendee_id = self.meetings[meeting_id].setdefault(user, str(uuid.uuid4()))
            result[user] = {"AttendeeId": attendee_id, "ExternalUserId": user, "JoinToken": "t"}
        return result

    async def delete_attendee(self, meeting_id: str, attendee_id: str) -> None:
        users = self.meetings.get(meeting_id, {})
        for user, attendee in list(users.items()):
            if attendee == attendee_id:
                del users[user]

    async def delete_meeting(self, meeting_id: str) -> None:
        self.deleted.append(meeting_id)
        self.meetings.pop(meeting_id, None)


@dataclass
class World:
    joins: Joins
    chime: FakeChime
    tables: RoomTables
    spy: Any

    async def activate(self, room_id: str | None = None, **overrides: Any) -> str:
        room_id = room_id or f"room-{uuid.uuid4().hex[:8]}"
        now = int(time.time())
        data = {
            "room_id": room_id,
            "title": "t",
            "topic": "t",
            "media_region": "us-east-1",
            "start_at": now - 5,
            "end_at": now + 3600,
            **overrides,
        }
        await transact(self.tables.client, [self.tables.activated(data, now * 1000, now + 7200)])
        return room_id

    def announced(self, event_type: str) -> list[Any]:
        events = [decode(body) for body, _ in list(self.spy.pending._queue)]
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
    store = Store(aws.dynamodb, inbox=Inbox(aws.dynamodb, names["inbox"]), outbox=outbox)
    tables = RoomTables(aws.dynamodb, names)
    chime = FakeChime()
    policy = JoinPolicy(meeting_wait_seconds=2.0, lease_seconds=5)
    return World(Joins(tables, store, chime, policy), chime, tables, spy)


async def test_concurrent_first_joins_create_one_meeting(world: World) -> None:
    room_id = await world.activate()
    answers = await asyncio.gather(*(world.joins.join(room_id, f"u{n}") for n in range(20)))
    assert len({a["Meeting"]["MeetingId"] for a in answers}) == 1
    assert len(world.chime.created) == 1
    assert len(world.announced("MeetingStarted")) == 1
    assert len(world.announced("AttendeeJoined")) == 20


async def test_a_lapsed_lease_of_a_crashed_creator_is_taken_over(world: World) -> None:
    room_id = await world.activate()
    now = int(time.time())
    assert await world.tables.take_lease(room_id, "crashed", now, now, None)  # lapses in 1 s
    started = time.monotonic()
    answer = await world.joins.join(room_id, "ada")  # waits for the lease to lapse
    assert time.monotonic() - started < 3
    assert answer["Meeting"]["MeetingId"] == world.chime.created[0]
    room = await world.tables.room(room_id)
    assert room is not None
    assert room.lease_owner is None
    assert room.meeting_generation == 1


async def test_a_live_lease_that_never_ends_gives_503_after_the_bounded_wait(
    world: World,
) -> None:
    room_id = await world.activate()
    now = int(time.time())
    assert await world.tables.take_lease(room_id, "slow", now, now + 60, None)
    with pytest.raises(MeetingUnavailable) as raised:
        await world.joins.join(room_id, "ada")
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
        await world.joins.join(room_id, "ada")
    room = await world.tables.room(room_id)
    assert room is not None
    assert room.lease_owner is None
    answer = await world.joins.join(room_id, "ada")
    assert answer["Meeting"]["MeetingId"] == world.chime.created[0]


async def test_a_meeting_that_stays_gone_is_retried_once_then_503(world: World) -> None:
    room_id = await world.activate()
    world.chime.gone_always = True
    with pytest.raises(MeetingUnavailable):
        await world.joins.join(room_id, "ada")
    assert world.chime.attendee_calls == 2
    assert len(world.chime.created) == 2  # the first meeting, and one re-creation


async def test_a_room_that_ends_while_its_meeting_is_created_keeps_no_meeting(
    world: World,
) -> None:
    room_id = await world.activate()

    async def end_the_room() -> None:
        now = int(time.time())
        await transact(
            world.tables.client,
            [world.tables.finished(room_id, "ended", now * 1000, now + 60)],
        )

    world.chime.before_create_returns = end_the_room
    with pytest.raises(RoomNotActive):
        await world.joins.join(room_id, "ada")
    assert world.chime.deleted == world.chime.created
    assert world.announced("MeetingStarted") == []


async def test_a_full_meeting_is_a_conflict(world: World) -> None:
    room_id = await world.activate()
    world.chime.full = True
    with pytest.raises(RoomFull) as raised:
        await world.joins.join(room_id, "ada")
    assert raised.value.status == 409


async def test_unknown_and_inactive_rooms(world: World) -> None:
    with pytest.raises(RoomNotFound):
        await world.joins.join("nope", "ada")
    later = await world.activate(start_at=int(time.time()) + 60)
    with pytest.raises(RoomNotActive):
        await world.joins.join(later, "ada")
    over = await world.activate(start_at=1, end_at=int(time.time()))
    with pytest.raises(RoomNotActive):
        await world.joins.join(over, "ada")
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


def conflict() -> ClientError:
    """What DynamoDB answers when another transaction holds an item."""
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "[TransactionConflict]"},
            "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
        },
        "TransactWriteItems",
    )


async def test_transaction_conflicts_on_a_busy_room_are_retried_then_503(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = world.joins.store
    real_commit = store.commit
    conflicts = {"left": 2}

    async def busy_commit(*args: Any, **kwargs: Any) -> bool:
        if conflicts["left"]:
            conflicts["left"] -= 1
            raise conflict()
        return await real_commit(*args, **kwargs)

    monkeypatch.setattr(store, "commit", busy_commit)
    room_id = await world.activate()
    answer = await world.joins.join(room_id, "ada")  # two conflicts, then through
    assert answer["Attendee"]["ExternalUserId"] == "ada"
    assert conflicts["left"] == 0

    conflicts["left"] = 1000
    with pytest.raises(MeetingUnavailable) as raised:
        await world.joins.join(room_id, "bob")
    assert raised.value.error_code == "room_busy"
    assert is_transaction_conflict(conflict())
    assert not is_transaction_conflict(ValueError("x"))
