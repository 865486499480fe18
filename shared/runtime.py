"""Running services: one or several `Component`s in one process.

A service's `bootstrap.build(...)` returns a `Component`: its wired state, event
subscriptions, background loops, readiness checks and shutdown hooks, with all
its adapters wired. `run_components` starts them in order (bus consumers,
topology, loops) and stops them gracefully: stop consuming, let in-flight
handlers finish, stop loops, flush outboxes, close connections. The same code
serves `python -m services.<name>` (one component) and `make run` (four).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.bus import EventBus, Subscription
from shared.logging import get_logger
from shared.topology import durable_bindings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = get_logger("belfry.runtime")

Check = Callable[[], Awaitable[tuple[bool, Any]]]


@dataclass
class Component:
    """A service, wired: what its `build` hands to the runtime."""

    name: str
    bus: EventBus
    provides: Sequence[object] = ()  # what routes depend on, by type (`shared.service.provided`)
    subscriptions: Sequence[Subscription] = ()
    loops: Sequence[Callable[[], Awaitable[None]]] = ()
    checks: Mapping[str, Check] = field(default_factory=dict)
    on_stop: Sequence[Callable[[], Awaitable[Any]]] = ()


def bus_check(bus: EventBus) -> Check:
    async def check() -> tuple[bool, Any]:
        health = bus.health()
        return health.ok, {"transport": health.transport, **health.detail}

    return check


def dynamodb_check(client: DynamoDBClient, table: str, cache_seconds: float = 5.0) -> Check:
    """AWS reachable: a DescribeTable, cached briefly so probes stay cheap."""
    last: dict[str, Any] = {"at": 0.0, "result": (False, "not checked")}

    async def check() -> tuple[bool, Any]:
        if time.monotonic() - last["at"] < cache_seconds:
            result: tuple[bool, Any] = last["result"]
            return result
        try:
            async with asyncio.timeout(2):
                response = await client.describe_table(TableName=table)
            result = (True, response["Table"]["TableStatus"])
        except Exception as exc:
            result = (False, f"{type(exc).__name__}")
        last.update(at=time.monotonic(), result=result)
        return result

    return check


def readiness(components: Sequence[Component]) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    for component in components:
        checks[f"{component.name}.bus"] = bus_check(component.bus)
        for name, check in component.checks.items():
            checks[f"{component.name}.{name}"] = check
    return checks


@contextlib.asynccontextmanager
async def run_components(
    components: Sequence[Component],
    drain_timeout: float = 10.0,
    topology: Mapping[str, Sequence[str]] | None = None,
) -> AsyncIterator[None]:
    """Start the components; every process also declares the platform's queues
    (`shared.topology`), so no event is unroutable because its consumer has
    not started yet."""
    loops: list[asyncio.Task[None]] = []
    started: list[Component] = []
    try:
        for component in components:
            for sub in component.subscriptions:
                component.bus.subscribe(sub)
            await component.bus.start()
            started.append(component)
        if started:
            await started[0].bus.declare(durable_bindings() if topology is None else topology)
        for component in components:
            for loop in component.loops:
                loops.append(asyncio.create_task(_guarded(component.name, loop)))
        log.info("runtime.started", components=[c.name for c in components])
        yield
    finally:
        log.info("runtime.stopping")
        # 1. stop consuming and let in-flight handlers finish (publishing still works)
        await asyncio.gather(
            *(c.bus.stop_consuming(drain_timeout) for c in started), return_exceptions=True
        )
        # 2. stop background loops
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        # 3. flush outboxes and other hooks (the buses' publishers reconnect
        #    lazily is not a thing: hooks that publish run before buses close)
        for component in started:
            for hook in component.on_stop:
                try:
                    await hook()
                except Exception as exc:
                    log.warning(
                        "runtime.stop_hook_failed", component=component.name, error=repr(exc)
                    )
        # 4. disconnect
        await asyncio.gather(*(c.bus.close() for c in started), return_exceptions=True)
        log.info("runtime.stopped")


async def _guarded(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop; if it crashes, log and restart it after a pause."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("runtime.loop_crashed", component=name, exc_info=exc)
            await asyncio.sleep(1.0)


async def every(
    interval_seconds: float, step: Callable[[], Awaitable[object]], *, name: str
) -> None:
    """Run `step` forever, starting one every `interval_seconds` (a slow step is
    followed at once). A step that returns True has more to do and is run again
    at once; one that returns a float says how many seconds to wait; one that
    fails is logged (`<name>.failed`) and the loop goes on."""
    while True:
        started = time.monotonic()
        result: object = None
        try:
            result = await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(f"{name}.failed", error=repr(exc))
        if result is True:
            continue
        if isinstance(result, float):
            await asyncio.sleep(max(0.0, result))
        else:
            await asyncio.sleep(max(0.0, interval_seconds - (time.monotonic() - started)))
