"""Presence from Chime's meeting events (services/rooms/presence.py) over the
recording fakes: counts of connected attendees, meeting ends, duplicates and
reordering, poison. No SQS, no DynamoDB, no Chime."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from dataclasses import dataclass

import pytest

from services.rooms.attendance import Attendance
from services.rooms.chime_events import BadMeetingEvent, parse
from services.rooms.domain import ACTIVE, Lifecycle, RoomDetails
from services.rooms.meetings import Meetings
from services.rooms.ports import MeetingEventQueue, RoomStore
from services.rooms.presence import Presence
from tests.rooms.fakes import FakeChime, FakeClock, FakeQueue, FakeRoomStore, chime_event

NOW = 1_800_000_000
JOINED, LEFT, DROPPED = "chime:AttendeeJoined", "chime:AttendeeLeft", "chime:AttendeeDropped"


@dataclass
class World:
    store: FakeRoomStore
    chime: FakeChime
    queue: FakeQueue
    attendance: Attendance
    presence: Presence
    clock: itertools.count[int]

    async def room_with(self, *users: str) -> tuple[str, dict[str, str]]:
        """r1 active, `users` joined: its meeting id and each user's attendee id."""
        details = RoomDetails("Maths", "algebra", "us-east-1", NOW - 60, NOW + 3600)
        change = Lifecycle("r1", ACTIVE, NOW * 1000, NOW + 7200, details)
        await self.store.apply(change, once=("test", uuid.uuid4().hex))
        answers = await asyncio.gather(*(self.attendance.join("r1", u) for u in users))
        meeting = answers[0]["Meeting"]["MeetingId"]
        return meeting, {
            u: a["Attendee"]["AttendeeId"] for u, a in zip(users, answers, strict=True)
        }

    def event(self, event_type: str, meeting: str, attendee: str | None = None) -> str:
        return chime_event(event_type, meeting, attendee, at_ms=next(self.clock))

    async def deliver(self, *bodies: str) -> None:
        self.queue.put(*bodies)
        while self.queue.waiting:
            await self.presence.poll()

    def count(self) -> int:
        return self.store.rooms["r1"].attendee_count


@pytest.fixture
def world() -> World:
    store, chime, queue = FakeRoomStore(), FakeChime(), FakeQueue()
    rooms: RoomStore = store  # mypy checks the fakes against the ports' Protocols
    source: MeetingEventQueue = queue
    meetings = Meetings(rooms, chime, clock=FakeClock(NOW), wait_seconds=0.5)
    attendance = Attendance(rooms, chime, meetings, clock=FakeClock(NOW))
    ms = itertools.count(NOW * 1000, 1000)
    return World(store, chime, queue, attendance, Presence(rooms, source), ms)


async def test_the_count_is_of_connected_attendees(world: World) -> None:
    meeting, ids = await world.room_with("u1", "u2", "u3", "u4", "u5")
    assert world.count() == 0  # five joined, nobody connected yet
    await world.deliver(*(world.event(JOINED, meeting, ids[u]) for u in ("u1", "u2", "u3")))
    assert world.count() == 3
    await world.deliver(world.event(DROPPED, meeting, ids["u2"]))
    assert world.count() == 2

    listed = {r.user_id: r.connected for r in await world.attendance.attendees("r1")}
    assert listed == {"u1": True, "u2": False, "u3": True, "u4": False, "u5": False}
    changes = world.store.of_type("AttendeePresenceChanged")
    assert [
        (e.data.model_dump()["presence"], e.data.model_dump()["attendee_count"]) for e in changes
    ][-1] == (
        "dropped",
        2,
    )
    shown = [e.data.model_dump() for e in world.store.of_type("RoomUpdated")]
    assert [(s["status"], s["attendee_count"]) for s in shown][-1] == ("active", 2)
    versions = [s["version"] for s in shown]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert len(world.queue.deleted) == 4
    assert not world.queue.retried


async def test_duplicates_and_any_order_leave_the_same_state(world: World) -> None:
    meeting, ids = await world.room_with("u1", "u2", "u3")
    story = [
        world.event(JOINED, meeting, ids["u1"]),
        world.event(JOINED, meeting, ids["u2"]),
        world.event(LEFT, meeting, ids["u1"]),
        world.event(JOINED, meeting, ids["u3"]),
        world.event(JOINED, meeting, ids["u1"]),  # u1 back
        world.event(DROPPED, meeting, ids["u3"]),
    ]
    shuffled = story * 2  # every message twice (SQS is at-least-once)
    random.Random(7).shuffle(shuffled)
    for body in shuffled:  # one message per receive: the worst order
        await world.deliver(body)
    assert world.count() == 2  # u1 and u2
    rows = {r.user_id: r.connected for r in await world.store.presence(meeting)}
    assert rows == {"u1": True, "u2": True, "u3": False}

    writes = len(world.store.presence_writes)
    await world.deliver(*story)  # all of it again
    assert len(world.store.presence_writes) == writes  # nothing changed twice


async def test_a_meeting_chime_ends_is_forgotten_and_the_next_join_makes_one(world: World) -> None:
    meeting, ids = await world.room_with("u1")
    await world.deliver(world.event(JOINED, meeting, ids["u1"]))
    await world.deliver(
        world.event(LEFT, meeting, ids["u1"]), world.event("chime:MeetingEnded", meeting)
    )
    room = world.store.rooms["r1"]
    assert (room.meeting, room.attendee_count) == (None, 0)
    assert len(world.store.of_type("MeetingEnded")) == 1

    attendee_calls, meeting_calls = world.chime.attendee_calls, world.chime.meeting_calls
    answer = await world.attendance.join("r1", "u1")
    assert answer["Meeting"]["MeetingId"] != meeting
    # one CreateMeeting, one attendee call: no NotFound first
    assert (world.chime.meeting_calls, world.chime.attendee_calls) == (
        meeting_calls + 1,
        attendee_calls + 1,
    )
    # the old meeting's late news moves nothing in the new one
    await world.deliver(world.event(JOINED, meeting, ids["u1"]))
    await world.deliver(world.event("chime:MeetingEnded", meeting))
    room = world.store.rooms["r1"]
    assert room.meeting_id == answer["Meeting"]["MeetingId"]
    assert room.attendee_count == 0
    assert len(world.store.of_type("MeetingEnded")) == 1


async def test_concurrent_pollers_lose_no_change(world: World) -> None:
    users = [f"u{n}" for n in range(30)]
    meeting, ids = await world.room_with(*users)
    bodies = [world.event(JOINED, meeting, ids[u]) for u in users]
    await asyncio.gather(*(world.presence.handle(world.queue.put(b)) for b in bodies))
    assert world.count() == 30
    shown = [e.data.model_dump()["attendee_count"] for e in world.store.of_type("RoomUpdated")]
    assert max(shown) == 30


async def test_poison_is_sent_back_for_the_dead_letter_queue_and_the_rest_goes_on(
    world: World,
) -> None:
    meeting, ids = await world.room_with("u1")
    (not_json,) = world.queue.put("{not json")
    (foreign,) = world.queue.put(chime_event(JOINED, "0" * 8, "a", at_ms=NOW * 1000))
    (kind,) = world.queue.put(world.event("chime:SomethingNew", meeting))
    (good,) = world.queue.put(world.event(JOINED, meeting, ids["u1"]))
    await world.presence.poll()
    assert world.queue.retried == [not_json]  # the redrive policy takes it from here
    assert set(world.queue.deleted) == {foreign, kind, good}  # logged and done
    assert world.count() == 1


async def test_a_poller_waits_longer_each_time_the_queue_is_unreachable(world: World) -> None:
    world.queue.fail_receives = 3
    waits = [await world.presence.poll() or 0.0 for _ in range(3)]
    assert waits[0] > 0
    assert waits == sorted(waits)
    assert waits[0] < waits[-1]
    assert await world.presence.poll() is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("nope", "not_json"),
        ("[1]", "not_an_event"),
        ('{"source": "aws.s3", "detail-type": "x"}', "not_a_meeting_event"),
        (
            '{"source": "aws.chime", "detail-type": "Chime Meeting State Change", "id": "e",'
            ' "detail": {"eventType": "chime:AttendeeJoined", "timestamp": 1, "meetingId": "m"}}',
            "invalid_detail",
        ),
    ],
)
def test_what_is_not_a_meeting_event_says_why(body: str, reason: str) -> None:
    with pytest.raises(BadMeetingEvent) as refused:
        parse(body)
    assert refused.value.reason == reason


async def test_what_a_chime_event_causes_carries_its_id_as_correlation_id(world: World) -> None:
    meeting, ids = await world.room_with("u1")
    body = world.event(JOINED, meeting, ids["u1"])
    await world.deliver(body)
    caused = world.store.of_type("AttendeePresenceChanged") + world.store.of_type("RoomUpdated")
    assert {e.correlation_id for e in caused[-2:]} == {parse(body).event_id}
