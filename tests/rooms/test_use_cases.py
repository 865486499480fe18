"""rooms' use cases over recording fakes of their ports (tests/rooms/fakes.py):
joins, leaves, the attendee list, the landing page and the event handlers as
`wire` binds them. No broker, no DynamoDB, no Chime; a clock the test holds."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.rooms.attendance import Attendance
from services.rooms.domain import (
    ACTIVE,
    ENDED,
    SCHEDULED,
    TERMINAL,
    Lifecycle,
    MeetingUnavailable,
    RoomDetails,
    RoomFull,
    RoomNotActive,
    RoomNotFound,
    meeting_request_token,
)
from services.rooms.handlers import HANDLERS
from services.rooms.listing import Listing
from services.rooms.meetings import Meetings
from services.rooms.ports import MeetingGateway, RoomStore
from shared.bus import Subscription
from shared.bus.base import Dispatcher
from shared.events import (
    AttendeeJoined,
    AttendeeLeft,
    Envelope,
    EventData,
    MeetingStarted,
    RoomActivated,
    RoomCancelled,
    RoomEnded,
    RoomScheduled,
)
from shared.topology import wire
from tests.rooms.fakes import FakeChime, FakeClock, FakeRoomStore
from tests.support import wait_until

NOW = 1_800_000_000
RETENTION = 3600


@dataclass
class World:
    store: FakeRoomStore
    chime: FakeChime
    clock: FakeClock
    meetings: Meetings
    attendance: Attendance
    listing: Listing

    async def activate(
        self, room_id: str = "r1", *, start: int = -60, end: int = 3600, status: str = ACTIVE
    ) -> None:
        """The room as the scheduler's event would leave it: `details` unless it ended."""
        window = RoomDetails("Maths", "algebra", "us-east-1", NOW + start, NOW + end)
        details = None if status in TERMINAL else window
        change = Lifecycle(room_id, status, NOW * 1000, NOW + end + RETENTION, details)
        assert await self.store.apply(change, once=("test", uuid.uuid4().hex)) == "applied"

    def subscriptions(self) -> dict[str, Subscription]:
        ports = {"rooms": self.store, "chime": self.chime, "clock": self.clock}
        wired = wire(HANDLERS, retention_seconds=RETENTION, **ports)
        return {s.queue: s for s in wired}


@pytest.fixture
def world() -> World:
    store, chime, clock = FakeRoomStore(), FakeChime(), FakeClock(NOW)
    rooms: RoomStore = store  # mypy checks the fakes against the ports' Protocols
    gateway: MeetingGateway = chime
    meetings = Meetings(rooms, gateway, clock=clock, wait_seconds=0.5, lease_seconds=20)
    attendance = Attendance(rooms, gateway, meetings, clock=clock, retention_seconds=RETENTION)
    return World(store, chime, clock, meetings, attendance, Listing(store, clock=clock))


# --- joins -------------------------------------------------------------------------


async def test_twenty_concurrent_first_joins_create_one_meeting(world: World) -> None:
    await world.activate()
    answers = await asyncio.gather(*(world.attendance.join("r1", f"u{n}") for n in range(20)))
    assert (world.chime.meeting_calls, len(world.chime.created)) == (1, 1)  # the lease's one
    assert {a["Meeting"]["MeetingId"] for a in answers} == set(world.chime.created)
    assert len({a["Attendee"]["AttendeeId"] for a in answers}) == 20
    assert world.store.types() == ["MeetingStarted"] + ["AttendeeJoined"] * 20
    room = world.store.rooms["r1"]
    assert (room.meeting_id, room.meeting_generation) == (world.chime.created[0], 1)
    assert room.lease_owner is None
    assert len(await world.attendance.attendees("r1")) == 20


async def test_a_user_who_joins_twice_gets_the_same_attendee(world: World) -> None:
    await world.activate()
    first = await world.attendance.join("r1", "ada")
    published = list(world.store.published)
    second = await world.attendance.join("r1", "ada")
    assert second == first
    assert world.store.published == published  # nothing new announced
    assert len(world.chime.created) == 1
    assert world.store.types() == ["MeetingStarted", "AttendeeJoined"]
    one, two = await asyncio.gather(*(world.attendance.join("r1", "bob") for _ in range(2)))
    assert one["Attendee"] == two["Attendee"]  # at once: one row written, one announced
    assert world.store.types() == ["MeetingStarted", "AttendeeJoined", "AttendeeJoined"]


async def test_a_meeting_chime_ended_is_recreated_once_on_the_next_join(world: World) -> None:
    await world.activate()
    first = await world.attendance.join("r1", "ada")
    old_meeting, old_attendee = first["Meeting"]["MeetingId"], first["Attendee"]["AttendeeId"]
    del world.chime.meetings[old_meeting]  # Chime ended it (idle): attendees get MeetingGone
    seen = len(world.store.published)

    second = await world.attendance.join("r1", "ada")
    new_meeting = second["Meeting"]["MeetingId"]
    assert world.chime.created == [old_meeting, new_meeting]
    assert world.chime.tokens[meeting_request_token("r1", 2)] == new_meeting
    room = world.store.rooms["r1"]
    assert (room.meeting_id, room.meeting_generation) == (new_meeting, 2)
    assert world.store.types()[seen:] == ["MeetingStarted", "AttendeeLeft", "AttendeeJoined"]
    left, joined = world.store.published[seen + 1 :]
    assert isinstance(left.data, AttendeeLeft)
    assert (left.data.meeting_id, left.data.attendee_id) == (old_meeting, old_attendee)
    assert isinstance(joined.data, AttendeeJoined)
    assert joined.data.attendee_id == second["Attendee"]["AttendeeId"] != old_attendee
    record = world.store.attendee_rows["r1", "ada"]
    assert (record.meeting_id, record.attendee_id) == (new_meeting, joined.data.attendee_id)

    await world.attendance.join("r1", "bob")  # the new meeting is the room's now
    assert len(world.chime.created) == 2


async def test_a_full_meeting_is_room_full(world: World) -> None:
    await world.activate()
    world.chime.full = True
    with pytest.raises(RoomFull) as raised:
        await world.attendance.join("r1", "ada")
    assert raised.value.status == 409
    assert world.store.of_type("AttendeeJoined") == []
    assert await world.store.attendee("r1", "ada") is None


async def test_unknown_and_inactive_rooms_never_reach_chime(world: World) -> None:
    with pytest.raises(RoomNotFound):
        await world.attendance.join("nope", "ada")
    await world.activate("later", start=60)
    await world.activate("over", start=-7200, end=0)  # ends right now
    await world.activate("scheduled", status=SCHEDULED)
    await world.activate("ended", status=ENDED)
    for room_id in ("later", "over", "scheduled", "ended"):
        with pytest.raises(RoomNotActive) as raised:
            await world.attendance.join(room_id, "ada")
        assert raised.value.status == 409
    assert (world.chime.created, world.chime.attendee_calls) == ([], 0)
    assert world.store.published == []


async def test_a_live_lease_of_another_join_gives_meeting_starting(world: World) -> None:
    await world.activate()
    assert await world.store.take_lease("r1", "another", NOW, NOW + 60, None)
    world.meetings.wait_seconds = 0.1
    started = time.monotonic()
    with pytest.raises(MeetingUnavailable) as raised:
        await world.attendance.join("r1", "ada")
    assert 0.1 <= time.monotonic() - started < 1
    assert (raised.value.status, raised.value.error_code) == (503, "meeting_starting")
    assert (world.chime.created, world.chime.attendee_calls) == ([], 0)
    assert world.store.rooms["r1"].lease_owner == "another"


async def test_a_lease_that_lapses_while_a_join_waits_is_taken_over(world: World) -> None:
    await world.activate()
    assert await world.store.take_lease("r1", "crashed", NOW, NOW + 5, None)
    join = asyncio.create_task(world.attendance.join("r1", "ada"))
    await wait_until(lambda: "room" in world.store.calls, timeout=2, message="a poll")
    assert not join.done()
    world.clock.now = NOW + 6
    answer = await asyncio.wait_for(join, 2)
    assert answer["Meeting"]["MeetingId"] == world.chime.created[0]
    assert world.store.types() == ["MeetingStarted", "AttendeeJoined"]


# --- leave, attendees, listing -----------------------------------------------------


async def test_leave_deletes_the_attendee_and_announces_it(world: World) -> None:
    await world.activate()
    answer = await world.attendance.join("r1", "ada")
    meeting_id, attendee_id = answer["Meeting"]["MeetingId"], answer["Attendee"]["AttendeeId"]
    await world.attendance.leave("r1", "ada")
    assert world.chime.meetings[meeting_id] == {}
    (left,) = world.store.of_type("AttendeeLeft")
    assert isinstance(left.data, AttendeeLeft)
    assert (left.data.attendee_id, left.data.user_id) == (attendee_id, "ada")
    assert await world.store.attendee("r1", "ada") is None

    await world.attendance.leave("r1", "ada")  # twice is fine, and announces nothing
    assert len(world.store.of_type("AttendeeLeft")) == 1
    with pytest.raises(RoomNotFound):
        await world.attendance.leave("nope", "ada")


async def test_attendees_lists_who_is_in(world: World) -> None:
    await world.activate()
    await world.activate("empty")
    for user in ("bob", "ada"):
        await world.attendance.join("r1", user)
    listed = await world.attendance.attendees("r1")
    assert [r.user_id for r in listed] == ["ada", "bob"]
    assert {r.meeting_id for r in listed} == set(world.chime.created)
    assert await world.attendance.attendees("empty") == []
    with pytest.raises(RoomNotFound):
        await world.attendance.attendees("nope")


async def test_the_landing_page_lists_active_rooms_in_their_window(world: World) -> None:
    await world.activate("soon-over", start=-60, end=60)
    await world.activate("long", start=-600, end=600)
    await world.activate("later", start=60)
    await world.activate("over", start=-600, end=-1)
    await world.activate("scheduled", status=SCHEDULED)
    await world.activate("ended", status=ENDED)
    listing = world.listing
    assert [r.room_id for r in await listing.active()] == ["long", "soon-over"]
    world.clock.now = NOW + 60
    assert [r.room_id for r in await listing.active()] == ["long", "later"]
    with pytest.raises(RoomNotFound):
        await listing.get("nope")


# --- the handler table -------------------------------------------------------------


async def deliver(
    subscription: Subscription, what: EventData | Envelope, occurred_at: datetime | None = None
) -> Envelope:
    """Through the handler `wire` bound for its type; an envelope is a redelivery."""
    if not isinstance(what, Envelope):
        what = Envelope.new(what, producer="scheduler", occurred_at=occurred_at)
    handler = subscription.handler_for(what.type)
    assert handler is not None
    await handler(what)
    return what


WINDOW: dict[str, Any] = {"topic": "algebra", "start_at": NOW - 60, "end_at": NOW + 3600}


def activated() -> RoomActivated:
    return RoomActivated(room_id="r1", title="Maths", media_region="eu-west-2", **WINDOW)


def scheduled(title: str) -> RoomScheduled:
    return RoomScheduled(
        room_id="r1", title=title, duration_minutes=61, scheduled_by="a", media_region="x", **WINDOW
    )


async def test_wire_gives_both_queues_and_refuses_what_they_do_not_take(world: World) -> None:
    subscriptions = world.subscriptions()
    assert set(subscriptions) == {"rooms.schedule", "rooms.attendance"}
    attendance = subscriptions["rooms.attendance"]
    assert attendance.handler_for("RoomScheduled") is None
    stray = Envelope.new(scheduled("x"), producer="scheduler")
    outcome = await Dispatcher("rooms", ()).dispatch(attendance, stray.encode(), 1)
    assert (outcome.action, outcome.reason) == ("dead_letter", "unexpected_event")
    assert world.store.rooms == {}
    with pytest.raises(TypeError, match="needs ports"):
        wire(HANDLERS, rooms=world.store)


async def test_activation_lists_the_room(world: World) -> None:
    schedule = world.subscriptions()["rooms.schedule"]
    event = await deliver(schedule, activated())
    room = world.store.rooms["r1"]
    assert (room.status, room.title, room.media_region) == (ACTIVE, "Maths", "eu-west-2")
    assert world.store.inbox[("rooms.schedule", event.event_id)] == "applied"
    assert world.store.expires_at["r1"] == NOW + 3600 + RETENTION
    assert await world.listing.active() == [room]


async def test_an_older_room_scheduled_after_a_newer_one_is_superseded(world: World) -> None:
    schedule = world.subscriptions()["rooms.schedule"]
    at = datetime.fromtimestamp(NOW, UTC)
    await deliver(schedule, scheduled("New"), occurred_at=at)
    older = await deliver(schedule, scheduled("Old"), occurred_at=at - timedelta(seconds=5))
    assert world.store.inbox[("rooms.schedule", older.event_id)] == "superseded"
    assert (world.store.rooms["r1"].status, world.store.rooms["r1"].title) == (SCHEDULED, "New")


async def test_room_ended_before_room_activated_stays_ended(world: World) -> None:
    schedule = world.subscriptions()["rooms.schedule"]
    await deliver(schedule, RoomEnded(room_id="r1", ended_at=NOW))
    late = await deliver(schedule, activated())
    assert world.store.inbox[("rooms.schedule", late.event_id)] == "superseded"
    assert world.store.rooms["r1"].status == "ended"
    assert await world.listing.active() == []
    with pytest.raises(RoomNotActive):
        await world.attendance.join("r1", "ada")


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (RoomEnded(room_id="r1", ended_at=NOW), "ended"),
        (RoomCancelled(room_id="r1", cancelled_by="bo"), "cancelled"),
    ],
)
async def test_the_end_of_a_room_deletes_its_meeting(
    world: World, end: EventData, status: str
) -> None:
    schedule = world.subscriptions()["rooms.schedule"]
    await deliver(schedule, activated())
    meeting_id = (await world.attendance.join("r1", "ada"))["Meeting"]["MeetingId"]
    event = await deliver(schedule, end)
    assert world.chime.deleted == [meeting_id]
    room = world.store.rooms["r1"]
    assert (room.status, room.meeting) == (status, None)
    assert await world.listing.active() == []

    await deliver(schedule, event)  # redelivered: a duplicate, and no meeting left to delete
    assert world.store.handled[-1] == (("rooms.schedule", event.event_id), "duplicate")
    assert world.chime.deleted == [meeting_id]


async def test_joins_leaves_and_rooms_own_events_do_not_move_the_count(world: World) -> None:
    """The count is of connected attendees: only Chime's meeting events move it
    (tests/rooms/test_presence.py); joining, leaving and rooms' own attendance
    events, redelivered or not, change nothing."""
    attendance = world.subscriptions()["rooms.attendance"]
    await world.activate()
    ids = {"room_id": "r1", "meeting_id": "m", "attendee_id": "a", "user_id": "ada"}
    joined = await deliver(attendance, AttendeeJoined(**ids))
    await deliver(attendance, joined)  # the same delivery again
    await deliver(attendance, MeetingStarted(room_id="r1", meeting_id="m", media_region="x"))
    await deliver(attendance, AttendeeLeft(**ids))
    assert world.store.rooms["r1"].attendee_count == 0

    await world.attendance.join("r1", "ada")
    await world.attendance.join("r1", "bob")
    await world.attendance.leave("r1", "ada")
    assert world.store.rooms["r1"].attendee_count == 0
    listed = await world.attendance.attendees("r1")
    assert [(r.user_id, r.connected) for r in listed] == [("bob", False)]


# --- the fake itself ---------------------------------------------------------------


async def test_the_fake_publishes_only_writes_whose_condition_held(world: World) -> None:
    await world.activate()
    meeting = {"MeetingId": "m1"}
    event = Envelope.new(
        MeetingStarted(room_id="r1", meeting_id="m1", media_region="x"), producer="rooms"
    )
    assert not await world.store.save_meeting("r1", "nobody", meeting, 1, [event])
    assert await world.store.take_lease("r1", "me", NOW, NOW + 5, None)
    assert not await world.store.take_lease("r1", "you", NOW, NOW + 5, None)
    assert await world.store.save_meeting("r1", "me", meeting, 1, [event])
    assert not await world.store.take_lease("r1", "you", NOW + 10, NOW + 15, None)
    assert world.store.published == [event]
