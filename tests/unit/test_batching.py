"""The coalescer behind rooms' joins and the notifier's lazy joins: window,
split at the batch limit, per-item errors, one call in flight per key, and a
caller cancelled while its batch is out."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from shared.batching import Coalescer, NoResult


class RecordingCall:
    """Answers item -> item.upper() (or the error given for an item), after a
    gate the test opens; records each call's key and items."""

    def __init__(self, errors: Mapping[str, Exception] | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.errors = dict(errors or {})
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, key: str, items: list[str]) -> dict[str, str | BaseException]:
        self.calls.append((key, items))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.fail is not None:
                raise self.fail
            return {i: self.errors.get(i) or i.upper() for i in items}
        finally:
            self.in_flight -= 1


async def test_items_of_one_key_within_the_window_go_in_one_call() -> None:
    call = RecordingCall()
    batcher: Coalescer[str, str, str] = Coalescer(call, window=0.05, max_batch=100)
    results = await asyncio.gather(
        *(batcher.submit("room-1", f"u{n}") for n in range(30)),
        batcher.submit("room-2", "v"),
    )
    assert results == [f"U{n}" for n in range(30)] + ["V"]
    assert sorted((key, len(items)) for key, items in call.calls) == [("room-1", 30), ("room-2", 1)]
    assert batcher.calls == 2


async def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    call = RecordingCall()
    batcher: Coalescer[str, str, str] = Coalescer(call, window=10, max_batch=100)
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit("room", f"u{n}") for n in range(200))), timeout=2
    )
    assert len(results) == 200  # two full batches, never the ten-second window
    assert [len(items) for _, items in call.calls] == [100, 100]


async def test_each_caller_gets_its_own_error_and_the_same_item_is_sent_once() -> None:
    call = RecordingCall(errors={"full": ValueError("room full")})
    batcher: Coalescer[str, str, str] = Coalescer(call, window=0.02, max_batch=100)
    results = await asyncio.gather(
        batcher.submit("room", "ada"),
        batcher.submit("room", "full"),
        batcher.submit("room", "ada"),
        return_exceptions=True,
    )
    assert results[0] == results[2] == "ADA"
    assert isinstance(results[1], ValueError)
    assert call.calls == [("room", ["ada", "full"])]


async def test_a_failed_call_fails_every_item_in_it_and_a_missing_result_is_an_error() -> None:
    call = RecordingCall()
    call.fail = RuntimeError("503")
    batcher: Coalescer[str, str, str] = Coalescer(call, window=0.01, max_batch=100)
    results = await asyncio.gather(
        batcher.submit("room", "a"), batcher.submit("room", "b"), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)

    async def forgetful(key: str, items: list[str]) -> dict[str, str | BaseException]:
        return {}

    lossy: Coalescer[str, str, str] = Coalescer(forgetful, window=0, max_batch=10)
    with pytest.raises(NoResult):
        await lossy.submit("room", "a")


async def test_what_arrives_while_a_call_is_out_goes_together_in_the_next() -> None:
    call = RecordingCall()
    call.gate.clear()
    batcher: Coalescer[str, str, str] = Coalescer(call, window=0.01, max_batch=100)
    first = asyncio.create_task(batcher.submit("room", "early"))
    while not call.calls:
        await asyncio.sleep(0.005)
    later = [asyncio.create_task(batcher.submit("room", f"late{n}")) for n in range(5)]
    await asyncio.sleep(0.05)  # well past the window: held back by the call in flight
    assert len(call.calls) == 1
    call.gate.set()
    assert await first == "EARLY"
    assert await asyncio.gather(*later) == [f"LATE{n}" for n in range(5)]
    assert [items for _, items in call.calls] == [["early"], [f"late{n}" for n in range(5)]]
    assert call.most_in_flight == 1


async def test_a_cancelled_caller_leaves_its_batch_alone() -> None:
    call = RecordingCall()
    call.gate.clear()
    batcher: Coalescer[str, str, str] = Coalescer(call, window=0.01, max_batch=100)
    leaving = asyncio.create_task(batcher.submit("room", "leaver"))
    staying = asyncio.create_task(batcher.submit("room", "stayer"))
    while not call.calls:
        await asyncio.sleep(0.005)
    leaving.cancel()
    call.gate.set()
    assert await staying == "STAYER"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert call.calls == [("room", ["leaver", "stayer"])]


async def test_close_fails_what_is_pending() -> None:
    call = RecordingCall()
    call.gate.clear()
    batcher: Coalescer[str, str, str] = Coalescer(call, window=0.01, max_batch=100)
    pending = asyncio.create_task(batcher.submit("room", "a"))
    while not call.calls:
        await asyncio.sleep(0.005)
    await batcher.close()
    with pytest.raises(NoResult):
        await pending
