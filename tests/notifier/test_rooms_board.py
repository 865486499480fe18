"""The room board's merge and coalescing rules on a fake clock, and the way
`room.updated` reaches sessions (no broker, no AWS)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from services.notifier.board import ROOM_FRAME, RoomBoard, RoomView, merge
from services.notifier.fanout import RoomBroadcaster
from services.notifier.handlers import HANDLERS, on_room_updated
from services.notifier.live import CLOSE_SLOW_CLIENT, Hub, Session
from shared.auth import Principal
from shared.events import Producer, RoomUpdated
from shared.topology import wire
from tests.notifier.test_units import ListFeed, StuckSocket

CUSTOMER = Principal("c1", groups=frozenset({"customer"}))
MANAGER = Principal("m1", groups=frozenset({"manager"}))
ADMIN = Principal("a1", groups=frozenset({"admin"}))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def room(
    count: int = 0,
    version: int = 0,
    status: str = "active",
    title: str = "Office hours",
    room_id: str = "r1",
) -> RoomUpdated:
    return RoomUpdated.model_validate(
        {
            "room_id": room_id,
            "title": title,
            "status": status,
            "attendee_count": count,
            "version": version,
        }
    )


def view(count: int, status: str = "active", title: str = "Office hours") -> RoomView:
    return RoomView("r1", title, status, count)


def merged(*events: RoomUpdated) -> RoomView:
    state = None
    for event in events:
        state = merge(state, event)
    assert state is not None
    return state.view


# --- merge ---------------------------------------------------------------------------------


def test_an_older_count_is_ignored_and_a_newer_or_equal_one_taken() -> None:
    assert merged(room(5, 7), room(9, 6)) == view(5)
    assert merged(room(5, 7), room(6, 7)) == view(6)
    assert merged(room(5, 7), room(2, 8)) == view(2)
    # an activation carries the version the room had: it does not undo a later count
    assert merged(room(3, 4), room(0, 2, "active")) == view(3)


def test_an_end_is_final_and_shows_no_attendees() -> None:
    for final in ("ended", "cancelled"):
        assert merged(room(4, 5), room(4, 5, final)) == view(0, final)
        # a late count, even a newer one, or a late activation: still final
        assert merged(room(4, 5), room(4, 5, final), room(6, 9), room(1, 2)) == view(0, final)
        assert merged(room(4, 5, final)) == view(0, final)  # first heard of as ended
    assert merged(room(1, 1, "ended"), room(0, 1, "cancelled")) == view(0, "ended")


def test_the_status_only_moves_forward_and_the_title_comes_from_the_latest_event() -> None:
    assert merged(room(0, 0, "scheduled"), room(0, 0, "active")) == view(0)
    assert merged(room(2, 3, "active"), room(5, 4, "scheduled")) == view(5)
    assert merged(room(1, 1, title="Old"), room(2, 2, title="New")).title == "New"
    assert merged(room(1, 2, title="New"), room(2, 1, title="Old")).title == "New"
    assert merged(room(1, 1, title="Kept"), room(2, 2, title="")).title == "Kept"
    assert merged(room(1, 2, title=""), room(0, 1, title="Late")).title == "Late"
    assert merged(room(1, 1), room(0, 1, "ended", title="Renamed")) == view(0, "ended", "Renamed")


def test_a_frame_has_exactly_the_four_keys_and_no_cursor() -> None:
    frame = json.loads(view(3).frame())
    assert frame == {
        "type": "room.updated",
        "data": {"room_id": "r1", "title": "Office hours", "status": "active", "attendee_count": 3},
    }


# --- coalescing ------------------------------------------------------------------------------


def board(clock: FakeClock, interval: float = 0.25, **extra: Any) -> RoomBoard:
    return RoomBoard(interval_seconds=interval, clock=clock, **extra)


def test_the_first_change_goes_at_once_and_the_rest_of_the_interval_is_merged() -> None:
    clock = FakeClock()
    rooms = board(clock)
    assert rooms.apply(room(0, 0)) == view(0)
    assert rooms.seconds_until_due() is None
    for n in range(1, 21):  # a burst of 20 within 0.2 s
        clock.advance(0.01)
        assert rooms.apply(room(n, n)) is None
    assert rooms.due() == []
    assert rooms.seconds_until_due() == pytest.approx(0.05)
    clock.advance(0.06)
    assert rooms.due() == [view(20)]
    assert rooms.due() == []
    assert rooms.seconds_until_due() is None
    clock.advance(1.0)  # quiet: the next change goes at once again
    assert rooms.apply(room(21, 21)) == view(21)


def test_steady_changes_make_one_frame_per_interval() -> None:
    clock = FakeClock()
    rooms = board(clock)
    sent = []
    for n in range(100):  # one change every 10 ms for a second
        if (frame := rooms.apply(room(n, n))) is not None:
            sent.append(frame)
        sent += rooms.due()
        clock.advance(0.01)
    assert 4 <= len(sent) <= 5
    assert sent[0] == view(0)


def test_a_state_equal_to_the_last_frame_is_not_sent_again() -> None:
    clock = FakeClock()
    rooms = board(clock)
    assert rooms.apply(room(3, 1)) == view(3)
    clock.advance(0.1)
    assert rooms.apply(room(4, 2)) is None
    assert rooms.apply(room(3, 3)) is None  # back to what was sent
    clock.advance(0.2)
    assert rooms.due() == []
    clock.advance(1.0)
    assert rooms.apply(room(3, 3)) is None  # a redelivery, after a quiet period
    assert rooms.apply(room(3, 2)) is None  # an older count
    assert rooms.seconds_until_due() is None


def test_an_end_within_the_interval_is_sent_when_it_ends_and_rooms_are_independent() -> None:
    clock = FakeClock()
    rooms = board(clock)
    assert rooms.apply(room(2, 1)) == view(2)
    assert rooms.apply(room(1, 0, room_id="r2")) == RoomView("r2", "Office hours", "active", 1)
    clock.advance(0.1)
    assert rooms.apply(room(2, 1, "ended")) is None
    assert rooms.apply(room(5, 9)) is None  # too late: ended
    clock.advance(0.2)
    assert rooms.due() == [view(0, "ended")]


def test_no_interval_sends_every_change() -> None:
    clock = FakeClock()
    rooms = board(clock, interval=0)
    assert [rooms.apply(room(n, n)) for n in range(3)] == [view(0), view(1), view(2)]


def test_the_board_is_bounded_and_forgets_ended_rooms() -> None:
    clock = FakeClock()
    rooms = board(clock, max_rooms=3, forget_seconds=60)
    for i in range(5):
        rooms.apply(room(1, 1, room_id=f"r{i}"))
    assert len(rooms) == 3
    assert rooms.get("r0") is None
    assert rooms.get("r4") is not None
    rooms.apply(room(2, 2, room_id="r2"))  # recently updated: kept
    rooms.apply(room(1, 1, room_id="r5"))
    assert rooms.get("r2") is not None
    assert rooms.get("r3") is None
    rooms.apply(room(0, 3, "ended", room_id="r2"))
    clock.advance(61)
    assert rooms.due() == [RoomView("r2", "Office hours", "ended", 0)]
    rooms.apply(room(3, 3, room_id="r4"))
    assert rooms.get("r2") is None  # ended a while ago
    assert rooms.get("r4") is not None
    assert rooms.get("r5") is not None


# --- to the sessions -------------------------------------------------------------------------


class RecordingSocket:
    def __init__(self) -> None:
        self.client_state = self.application_state = None
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self._gone = asyncio.Event()

    async def accept(self) -> None:
        return None

    async def send_text(self, text: str) -> None:
        self.frames.append(json.loads(text))

    async def receive(self) -> dict[str, Any]:
        await self._gone.wait()
        return {"type": "websocket.disconnect"}

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)
        self._gone.set()

    def rooms(self) -> list[dict[str, Any]]:
        return [f["data"] for f in self.frames if f["type"] == ROOM_FRAME]


def session(socket: Any, principal: Principal, rows: int = 0, **extra: Any) -> Session:
    options: dict[str, Any] = {
        "replay_limit": 1000,
        "send_buffer": 8,
        "send_timeout": 0.2,
        "poll_seconds": 10,
    }
    return Session(socket, principal, ListFeed(rows), **{**options, **extra})


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(*sessions: Session) -> AsyncIterator[None]:
    for s in sessions:
        assert await s.start(None)
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        yield
    finally:
        for s in sessions:
            await s.websocket.close(1000)
        await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def test_every_session_of_every_role_gets_the_frames_coalesced() -> None:
    hub = Hub()
    sockets = [RecordingSocket() for _ in range(3)]
    sessions = [session(s, p) for s, p in zip(sockets, (CUSTOMER, MANAGER, ADMIN), strict=True)]
    for s in sessions:
        hub.add(s)
    caster = RoomBroadcaster(board=RoomBoard(interval_seconds=0.1), hub=hub)
    loop = asyncio.create_task(caster.run())
    try:
        async with running(*sessions):
            caster.update(room(1, 1))
            # the first goes out at once (once every session is there to take it) ...
            await until(lambda: all(s.rooms()[-1:] == [view(1).data()] for s in sockets))
            # ... the next ones within the interval as one: the latest
            for n in range(2, 21):
                caster.update(room(n, n))
            await until(lambda: all(s.rooms()[-1:] == [view(20).data()] for s in sockets))
            for socket in sockets:
                assert [f["attendee_count"] for f in socket.rooms()] == [1, 20]
                assert socket.frames[0]["type"] == "session.ready"
                assert all("cursor" not in f for f in socket.frames[1:])
            caster.update(room(20, 20, "ended"))
            await until(lambda: all(s.rooms()[-1]["status"] == "ended" for s in sockets))
    finally:
        loop.cancel()
        for s in sessions:
            hub.remove(s)


async def test_frames_waiting_for_the_buffer_keep_only_the_latest_per_room() -> None:
    socket = RecordingSocket()
    s = session(socket, CUSTOMER, rows=3)
    for n in range(5):
        s.push("r1", ROOM_FRAME, view(n).frame())
    s.push("r2", ROOM_FRAME, RoomView("r2", "Other", "active", 7).frame())
    async with running(s):
        await until(lambda: len(socket.rooms()) == 2)
    assert socket.frames[0]["type"] == "session.ready"
    assert socket.rooms() == [view(4).data(), {**view(7).data(), "room_id": "r2", "title": "Other"}]
    assert [f["type"] for f in socket.frames].count("message.posted") == 0  # no `since`


async def test_a_client_that_does_not_take_room_frames_is_closed_4429() -> None:
    socket = StuckSocket()
    s = session(socket, CUSTOMER, send_buffer=2, send_timeout=0.1)
    assert await s.start(None)
    for n in range(10):
        s.push(f"r{n}", ROOM_FRAME, view(n).frame())
    await asyncio.wait_for(s.run(), 5)
    assert socket.closed is not None
    assert socket.closed[0] == CLOSE_SLOW_CLIENT
    assert s.outbound.qsize() <= 2


async def test_the_fanout_queue_hands_room_updates_to_the_board() -> None:
    updates: list[RoomUpdated] = []

    class Rooms:
        def update(self, event: RoomUpdated) -> None:
            updates.append(event)

    envelope = Producer("rooms")(room(2, 3))
    await on_room_updated(room(2, 3), envelope, rooms=Rooms())
    assert updates == [room(2, 3)]
    ports = ("claims", "members", "mentions", "joiner", "feed", "watcher", "hub", "rooms", "typing")
    subscriptions = wire(HANDLERS, **{name: object() for name in ports})
    fanout = next(s for s in subscriptions if s.queue == "notifier.fanout")
    assert "room.updated" in fanout.routing_keys
