"""Requests for one key that arrive together go out as one call.

A request opens its key's batch, or joins the one that is open. The batch
goes out once no request has joined it for `window` seconds (a burst keeps it
open, `max_wait` seconds at most), at once when it holds `max_batch` items,
and (with `one_in_flight`) not before the key's previous call has returned:
what arrives while a call is in flight goes together in the next. Each caller gets
its own item's result or error; a caller that is cancelled leaves its batch
alone (the others still get theirs), and the same item twice in a batch is
sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I", bound=Hashable)  # noqa: E741
R = TypeVar("R")

Call = Callable[[K, list[I]], Awaitable[Mapping[I, "R | BaseException"]]]


class NoResult(Exception):
    """The call returned nothing for this item."""


@dataclass
class _Batch(Generic[I, R]):
    items: dict[I, asyncio.Future[R]] = field(default_factory=dict)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    opened: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)


class Coalescer(Generic[K, I, R]):
    def __init__(
        self,
        call: Call[K, I, R],
        *,
        window: float,
        max_batch: int,
        max_wait: float | None = None,
        one_in_flight: bool = True,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("a batch holds at least one item")
        self._call = call
        self._window = window
        self._max_wait = window if max_wait is None else max(window, max_wait)
        self._max = max_batch
        self._one_in_flight = one_in_flight
        self._on_batch = on_batch
        self._open: dict[K, _Batch[I, R]] = {}
        self._locks: dict[K, tuple[asyncio.Lock, int]] = {}  # key -> lock, batches using it
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0

    async def submit(self, key: K, item: I) -> R:
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch()
            task = asyncio.create_task(self._run(key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        batch.last = time.monotonic()
        future = batch.items.get(item)
        if future is None:
            future = batch.items[item] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)  # a cancelled caller's error is not news
        if len(batch.items) >= self._max:
            self._seal(key, batch)
            batch.full.set()
        return await asyncio.shield(future)

    def _seal(self, key: K, batch: _Batch[I, R]) -> None:
        if self._open.get(key) is batch:
            del self._open[key]

    async def _run(self, key: K, batch: _Batch[I, R]) -> None:
        try:
            while self._window and not batch.full.is_set():
                now = time.monotonic()
                quiet = min(batch.last + self._window, batch.opened + self._max_wait) - now
                if quiet <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(batch.full.wait(), quiet)
            if self._one_in_flight and not batch.full.is_set():
                lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
                self._locks[key] = (lock, users + 1)
                try:
                    async with lock:  # still collecting while the previous call is out
                        self._seal(key, batch)
                        await self._send(key, batch)
                finally:
                    lock, users = self._locks[key]
                    if users == 1:
                        del self._locks[key]
                    else:
                        self._locks[key] = (lock, users - 1)
            else:
                self._seal(key, batch)
                await self._send(key, batch)
        except BaseException as exc:
            self._seal(key, batch)
            _fail(batch, exc if isinstance(exc, Exception) else NoResult("shut down"))
            raise

    async def _send(self, key: K, batch: _Batch[I, R]) -> None:
        items = list(batch.items)
        self.calls += 1
        self._on_batch(len(items))
        try:
            results = await self._call(key, items)
        except Exception as exc:
            _fail(batch, exc)
            return
        for item, future in batch.items.items():
            if future.done():
                continue
            result = results.get(item, NoResult(f"no result for {item!r}"))
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _fail(batch: _Batch[I, R], exc: Exception) -> None:
    for future in batch.items.values():
        if not future.done():
            future.set_exception(exc)
