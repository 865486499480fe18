"""Scheduler fixtures: its settings isolated per test, a clock tests can move,
the service app with that clock, and a probe queue counting its events on
RabbitMQ."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from services.scheduler.bootstrap import Scheduler, build, definition
from services.scheduler.settings import SchedulerSettings
from shared.auth import mint_local_token
from shared.bus import Subscription, create_bus
from shared.events import Envelope
from shared.service import create_platform_app, provided_by
from shared.settings import BelfrySettings
from tests.support import drop_topology, isolated, lifespan_client, wait_until


class MovableClock:
    """Wall-clock time plus an offset the test moves (`advance`), so a room's
    end arrives without waiting a minute for it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def scheduler_settings(
    make_settings: Callable[..., BelfrySettings], moto_url: str, amqp_url: str
) -> Callable[..., SchedulerSettings]:
    """Settings of this test's scheduler over RabbitMQ and moto."""

    def factory(**overrides: Any) -> SchedulerSettings:
        base = make_settings(amqp_url=amqp_url, aws_endpoint_url=moto_url).model_dump()
        # the scheduler consumes nothing: one retry level is enough, and every
        # level is a quorum queue per platform queue on the shared broker
        base.update(scheduler_tick_seconds=0.1, scheduler_outbox_relay_seconds=0.2)
        base.update(retry_delays_seconds=(0.05,))
        base.update(overrides)
        return SchedulerSettings(**base)

    return factory


def admin_headers(settings: BelfrySettings, sub: str = "ada") -> dict[str, str]:
    return {"authorization": f"Bearer {mint_local_token(settings, sub, ['admin'])}"}


@contextlib.asynccontextmanager
async def scheduler_app(
    settings: SchedulerSettings, clock: Callable[[], float] = time.time
) -> AsyncIterator[tuple[Any, Scheduler]]:
    """The scheduler served in process (lifespan running) with `clock`: an
    admin's httpx client and the wired service."""
    timed = dataclasses.replace(definition, build=functools.partial(build, clock=clock))
    app = create_platform_app([timed], settings={"scheduler": settings})
    async with lifespan_client(app, **admin_headers(settings)) as client:
        yield client, provided_by(app, Scheduler)


class EventProbe:
    """A queue of this test bound to the scheduler's routing keys; records what
    arrives with the time (per `clock`) it arrived."""

    def __init__(self, settings: BelfrySettings, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.events: list[tuple[float, Envelope]] = []
        self.bus = create_bus(settings, "probe")
        self.bus.subscribe(Subscription("probe.schedule", ("room.*",), self._record))

    async def _record(self, envelope: Envelope) -> None:
        self.events.append((self.clock(), envelope))

    def of(self, event_type: str, room_id: str | None = None) -> list[tuple[float, Envelope]]:
        return [
            (at, e)
            for at, e in self.events
            if e.type == event_type and (room_id is None or e.data.room_id == room_id)  # type: ignore[attr-defined]
        ]

    async def wait_for(
        self, event_type: str, room_id: str | None = None, *, count: int = 1, timeout: float = 10
    ) -> list[tuple[float, Envelope]]:
        await wait_until(
            lambda: len(self.of(event_type, room_id)) >= count,
            timeout=timeout,
            message=f"{count} x {event_type}",
            describe=lambda: f"seen {[e.type for _, e in self.events]}",
        )
        return self.of(event_type, room_id)


def unique_settings(amqp_url: str, moto_url: str, **overrides: Any) -> SchedulerSettings:
    """Isolated settings for a module-scoped app (`make_settings` is per test)."""
    values: dict[str, Any] = {
        **isolated(),
        "amqp_url": amqp_url,
        "aws_endpoint_url": moto_url,
        "retry_delays_seconds": (0.05,),
        "scheduler_tick_seconds": 0.1,
        **overrides,
    }
    return SchedulerSettings(**values)


@pytest.fixture
async def probe(
    scheduler_settings: Callable[..., SchedulerSettings], clock: MovableClock
) -> AsyncIterator[EventProbe]:
    settings = scheduler_settings()
    probe = EventProbe(settings, clock)
    await probe.bus.start()
    try:
        yield probe
    finally:
        await probe.bus.stop(2)
        with contextlib.suppress(Exception):
            await drop_topology(settings, "probe.schedule")
