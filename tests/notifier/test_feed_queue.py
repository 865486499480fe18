"""Which waiting feed appends go into the next transaction (adapters/feed_queue.py),
and which fan-out keys the receipt watcher looks up (fanout.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

from services.notifier.adapters.feed_queue import Append, take
from services.notifier.domain import Audience, FeedEntry
from services.notifier.fanout import ReceiptWatcher
from tests.notifier.test_units import FakeFeed, FakeHub


def _append(key: str, *users: str) -> Append:
    entries = [FeedEntry(u, key, "message.posted", {}, Audience()) for u in users]
    return Append(key, entries, set(users), asyncio.get_running_loop().create_future())


def _keys(appends: list[Append] | deque[Append]) -> list[str]:
    return [a.key for a in appends]


async def test_appends_to_a_feed_being_written_wait_and_keep_their_order() -> None:
    pending = deque(
        [
            _append("a", "busy", "c1"),  # busy is being written: waits
            _append("b", "c1"),  # c1 is behind "a": waits too, to stay in order
            _append("c", "c2"),
            _append("d", "busy"),
            _append("e", "c3"),
        ]
    )
    tx = take(pending, {"busy"})
    assert _keys(tx.appends) == ["c", "e"]
    assert _keys(pending) == ["a", "b", "d"]
    tx = take(pending, set())  # the transaction on busy's feed is done
    assert _keys(tx.appends) == ["a", "b", "d"]
    assert not pending


async def test_a_redelivery_goes_into_the_next_transaction() -> None:
    pending = deque([_append("a", "u1"), _append("a", "u1"), _append("b", "u2")])
    tx = take(pending, set())
    assert _keys(tx.appends) == ["a", "b"]
    assert _keys(pending) == ["a"]


async def test_a_transaction_stays_within_the_item_limit() -> None:
    pending = deque(_append(f"k{i}", f"u{i}") for i in range(60))
    tx = take(pending, set())
    items = len(tx.appends) + sum(tx.users.values()) + len(tx.users)  # receipts, rows, heads
    assert items <= 100
    assert len(tx.appends) + len(pending) == 60
    assert _keys(tx.appends) == [f"k{i}" for i in range(len(tx.appends))]  # in order


# --- the receipt watcher: keys written here, or still being written here ----------------


async def test_a_key_this_process_is_appending_is_never_looked_up() -> None:
    now = [0.0]
    feed, hub = FakeFeed(), FakeHub()
    watcher = ReceiptWatcher(feed=feed, hub=hub, grace_seconds=0.25, clock=lambda: now[0])
    watcher.watch("mine")
    feed.writing.add("mine")  # queued in this process's feed writer (a backlog)
    for t in (0.3, 1.0, 5.0):
        now[0] = t
        await watcher.check()
    assert feed.lookups == []
    feed.writing.discard("mine")
    feed.local.add("mine")  # committed here: its rows went to the sessions directly
    await watcher.check()
    assert len(watcher) == 0
    assert feed.lookups == []
    assert hub.poked == []


async def test_a_key_not_written_yet_is_looked_up_less_and_less_often() -> None:
    now = [0.0]
    feed, hub = FakeFeed(), FakeHub()
    watcher = ReceiptWatcher(
        feed=feed, hub=hub, grace_seconds=0.25, max_wait_seconds=2.0, clock=lambda: now[0]
    )
    watcher.watch("peer")
    looked_at: list[float] = []
    for step in range(1, 101):  # 10 s in steps of 0.1 s
        now[0] = step / 10
        before = len(feed.lookups)
        await watcher.check()
        if len(feed.lookups) > before:
            looked_at.append(now[0])
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(looked_at)]
    assert looked_at[0] == 0.3  # after the grace
    assert gaps[:3] == [0.5, 1.0, 2.0]
    assert set(gaps[3:]) == {2.0}  # capped
    feed.done["peer"] = {"m1"}
    now[0] += 2.0
    await watcher.check()
    assert hub.poked == ["m1"]
    assert len(watcher) == 0
