"""Per replica: waking this replica's WebSocket sessions for feed appends
that a peer replica made (its own appends reach its sessions directly), and
sending them `room.updated` from this replica's room board."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from shared.events import RoomUpdated
from shared.logging import get_logger
from shared.runtime import every

from .board import ROOM_FRAME, RoomBoard, RoomView
from .ports import Broadcast, Feed, Wakeable

log = get_logger("belfry.notifier")


class ReceiptWatcher:
    """Wakes this replica's sessions for appends made by a peer. A watched key
    is first given `grace_seconds` to be written here (then its rows went to the
    sessions as they were committed, at no cost); after that the oldest due keys
    are looked up together, at most one BatchGetItem of 100 keys per
    `interval_seconds`, so a backlog never turns into a storm of reads. A key
    whose append is in flight in this process is not looked up at all (its rows
    reach the sessions here when it commits), and a key not found yet is looked
    up again after twice the wait before, at most `max_wait_seconds`: under a
    backlog the fan-out queue runs ahead of the feed queue, and constant retries
    would spend the replica's CPU and the table's reads on keys not written yet."""

    def __init__(
        self,
        *,
        feed: Feed,
        hub: Wakeable,
        interval_seconds: float = 0.1,
        grace_seconds: float = 0.25,
        give_up_seconds: float = 60.0,
        max_wait_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed = feed
        self._hub = hub
        self._interval = interval_seconds
        self._grace = grace_seconds
        self._give_up = give_up_seconds
        self._max_wait = max_wait_seconds
        self._clock = clock
        # key -> (next look, give up, wait before the look after it)
        self._pending: dict[str, tuple[float, float, float]] = {}
        self._wake = asyncio.Event()

    def watch(self, key: str) -> None:
        if not self._feed.written_here(key) and key not in self._pending:
            now = self._clock()
            self._pending[key] = (now + self._grace, now + self._give_up, 2 * self._grace)
            self._wake.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        await every(self._interval, self._round, name="fanout.receipts")

    async def _round(self) -> None:
        await self._wake.wait()
        try:
            await self.check()  # a failure: the next round tries again
        finally:
            if not self._pending:
                self._wake.clear()

    async def check(self) -> None:
        now = self._clock()
        due: list[str] = []
        for key, (look, give_up, wait) in list(self._pending.items()):
            if self._feed.written_here(key):
                del self._pending[key]
            elif give_up < now:
                log.warning("fanout.feed_not_written", key=key)
                del self._pending[key]
            elif look <= now and self._feed.in_flight(key):
                self._pending[key] = (now + self._grace, give_up, wait)
            elif look <= now and len(due) < 100:
                due.append(key)
        if not due:
            return
        found = await self._feed.receipts(due)
        for key in due:
            users = found.get(key)
            if users is not None:
                self._pending.pop(key, None)
                self._hub.poke(users)
            elif key in self._pending:
                _, give_up, wait = self._pending[key]
                self._pending[key] = (now + wait, give_up, min(2 * wait, self._max_wait))


class RoomBroadcaster:
    """`room.updated` to every session of this replica: a change the board says
    is due now goes at once; merged ones when their room's interval ends."""

    def __init__(self, *, board: RoomBoard, hub: Broadcast) -> None:
        self._board = board
        self._hub = hub
        self._wake = asyncio.Event()

    def update(self, event: RoomUpdated) -> None:
        view = self._board.apply(event)
        if view is not None:
            self._send(view)
        self._wake.set()

    async def run(self) -> None:
        while True:
            wait = self._board.seconds_until_due()
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()  # whatever woke us, `seconds_until_due` is asked again
                continue
            for view in self._board.due():
                self._send(view)

    def _send(self, view: RoomView) -> None:
        self._hub.broadcast(view.room_id, ROOM_FRAME, view.frame())
