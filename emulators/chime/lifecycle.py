"""What runs between requests: the sweep that ends meetings in real time, and the
publisher that sends lifecycle events to EventBridge.

Neither relies on the ASGI lifespan (the platform embeds the emulator with
uvicorn's `lifespan="off"`): `Background.kick()`, called after every request
from within the event loop, starts what has work to do, and each task ends
when its work is done. Without a running loop (`Emulator.handle` called from
synchronous code) nothing starts; `Emulator.reset()` stops both and
`Emulator.aclose()` also closes the EventBridge clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from emulators.chime.config import EmulatorConfig
from emulators.chime.events import MeetingEvents, PendingEvent
from emulators.chime.meetings import Meetings

log = logging.getLogger("emulators.chime")

SWEEP_INTERVAL_SECONDS = 0.25
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 2.0
# Per-entry PutEvents errors that no retry can fix: such entries are dropped.
REJECTED_CODES = frozenset({"InvalidArgument", "MalformedDetail", "ValidationException"})
DUMMY_KEY = "belfry-local"  # EventBridge stand-ins accept any credentials
_CLIENT_CONFIG = AioConfig(
    retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10
)


class Host(Protocol):
    """The part of the emulator the background tasks see (its state is rebuilt on reset)."""

    config: EmulatorConfig
    events: MeetingEvents
    meetings: Meetings

    def sweep(self) -> None: ...


def backoff_seconds(failures: int) -> float:
    """How long to wait after the `failures`-th failure in a row (1, 2, ...)."""
    return float(min(BACKOFF_FIRST_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS))


class EventBridgeClients:
    """aiobotocore `events` clients per (endpoint, region), kept open between batches."""

    def __init__(self) -> None:
        self._session = get_session()
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str], Any] = {}

    async def put(self, endpoint: str, bus: str, batch: list[PendingEvent]) -> list[str | None]:
        """PutEvents of one batch (one region) to `bus`; each entry's error code, or None."""
        key = (endpoint, batch[0].region)
        client = self._clients.get(key)
        if client is None:
            creator: Any = self._session.create_client(
                "events",
                endpoint_url=endpoint,
                region_name=batch[0].region,
                config=_CLIENT_CONFIG,
                aws_access_key_id=DUMMY_KEY,
                aws_secret_access_key=DUMMY_KEY,
            )
            client = self._clients[key] = await self._stack.enter_async_context(creator)
        entries = [{**event.entry, "EventBusName": bus} for event in batch]
        response = await client.put_events(Entries=entries)
        if not response.get("FailedEntryCount"):
            return [None] * len(batch)
        results = list(response.get("Entries") or [])
        results += [{"ErrorCode": "InternalFailure"}] * (len(batch) - len(results))
        return [result.get("ErrorCode") for result in results[: len(batch)]]

    def forget(self) -> None:
        """Drop clients that belong to another (finished) event loop."""
        self._stack = contextlib.AsyncExitStack()
        self._clients.clear()

    async def aclose(self) -> None:
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        self._clients.clear()
        await stack.aclose()


def _running(task: asyncio.Task[None] | None) -> bool:
    return task is not None and not task.done()


def _cancel(task: asyncio.Task[None]) -> None:
    loop = task.get_loop()
    if task.done() or loop.is_closed():
        return
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if loop is current:
        task.cancel()
    else:
        loop.call_soon_threadsafe(task.cancel)


class Background:
    def __init__(self, host: Host) -> None:
        self._host = host
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.clients = EventBridgeClients()

    def kick(self) -> None:
        """Start the sweep if a meeting is live, the publisher if events wait to be sent."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is not self._loop:
            if self._loop is not None:
                self.stop()
                self.clients.forget()
            self._loop = loop
        if self._host.meetings.live and not _running(self._sweeper):
            self._sweeper = loop.create_task(self._sweep(), name="chime-emulator-sweep")
        events = self._host.events
        if events.queue and self._host.config.events_endpoint and not _running(self._publisher):
            self._publisher = loop.create_task(self._publish(events), name="chime-emulator-events")

    def active(self) -> list[str]:
        """The names of the background tasks running now."""
        tasks = (self._sweeper, self._publisher)
        return [t.get_name() for t in tasks if t is not None and not t.done()]

    def stop(self) -> None:
        """Cancel both tasks (the state they worked on is being replaced)."""
        for task in (self._sweeper, self._publisher):
            if task is not None:
                _cancel(task)
        self._sweeper = self._publisher = None

    async def aclose(self) -> None:
        tasks = [t for t in (self._sweeper, self._publisher) if t is not None]
        self.stop()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(t for t in tasks if t.get_loop() is loop), return_exceptions=True)
        await self.clients.aclose()

    async def _sweep(self) -> None:
        while self._host.meetings.live:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            try:
                self._host.sweep()
            except Exception:
                log.exception("chime.sweep_failed")
            self.kick()

    async def _publish(self, events: MeetingEvents) -> None:
        """Send the queue in order, batch by batch, backing off while EventBridge fails."""
        failures = 0
        while events.queue:
            endpoint = self._host.config.events_endpoint
            if endpoint is None:
                return  # publishing was turned off: the queue waits
            batch = events.take_batch()
            try:
                codes = await self.clients.put(endpoint, self._host.config.event_bus_name, batch)
            except asyncio.CancelledError:
                events.settle(batch)
                raise
            except Exception as exc:
                codes = ["Unreachable"] * len(batch)
                error = f"{type(exc).__name__}: {exc}"
            else:
                error = ", ".join(sorted({code for code in codes if code}))
            rejected = [e for e, code in zip(batch, codes, strict=True) if code in REJECTED_CODES]
            retry = [
                e
                for e, code in zip(batch, codes, strict=True)
                if code is not None and code not in REJECTED_CODES
            ]
            events.settle(retry, rejected)
            if not retry:
                failures = 0
                continue
            failures += 1
            events.failed_attempts += 1
            delay = backoff_seconds(failures)
            if failures == 1 or failures % 10 == 0:
                log.warning(
                    "chime.events_put_failed endpoint=%s failures=%d retry_in=%.1fs error=%s",
                    endpoint,
                    failures,
                    delay,
                    error,
                )
            await asyncio.sleep(delay)
