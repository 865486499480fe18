"""Service definitions and the app that serves one service or all of them.

A service package exposes a `ServiceDefinition`: its routers (module-level,
no I/O at import), its settings class, the AWS clients it needs and its
`build` coroutine, the composition root that wires adapters to handlers and
returns a `Component`. `create_platform_app` serves any set of definitions
behind one FastAPI app: `python -m services.rooms` serves one, `make run`
all four. Routes depend on the use cases a service provides, by type:
`Annotated[Attendance, Depends(provided(Attendance))]`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI
from starlette.requests import HTTPConnection

from shared.app import create_app
from shared.auth import create_verifier
from shared.aws import AwsClients, ServiceName
from shared.budget import open_budget
from shared.bus import MemoryBroker, create_bus
from shared.bus.base import EventBus
from shared.http_server import refuse_exposed_local_secret, serve_metrics_apart, server_config
from shared.logging import configure_logging, get_logger
from shared.ratelimit import open_rate_limiter
from shared.runtime import Component, readiness, run_components
from shared.settings import BelfrySettings

log = get_logger("belfry.service")

T = TypeVar("T")
Build = Callable[[Any, AwsClients, EventBus], Awaitable[Component]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    title: str
    routers: Sequence[APIRouter]
    settings_type: type[BelfrySettings]
    build: Build
    aws_services: tuple[ServiceName, ...] = ()
    description: str = ""


def provided(kind: type[T]) -> Callable[[HTTPConnection], T]:
    """A route dependency: the `kind` object a running service provides (its
    `Component.provides`), typed: `Annotated[Schedule, Depends(provided(Schedule))]`."""

    def dependency(connection: HTTPConnection) -> T:
        return provided_by(connection.app, kind)

    dependency.__name__ = f"provided_{kind.__name__}"
    return dependency


def provided_by(app: FastAPI, kind: type[T]) -> T:
    """The `kind` object a service of this app provides (routes, tests, tools)."""
    value = getattr(app.state, "provided", {}).get(kind)
    if not isinstance(value, kind):
        raise RuntimeError(f"no running service provides a {kind.__name__} in this app")
    return value


def create_platform_app(
    definitions: Sequence[ServiceDefinition],
    *,
    settings: Mapping[str, BelfrySettings] | None = None,
    title: str | None = None,
    memory_broker: MemoryBroker | None = None,
) -> FastAPI:
    """One app serving `definitions`; each reads its own settings class unless
    `settings` (by service name) is given. The first one's settings decide the
    process-wide things: AWS endpoints, auth, the memory broker."""
    configs = {d.name: (settings or {}).get(d.name) or d.settings_type() for d in definitions}
    first = configs[definitions[0].name]
    aws_services = tuple(dict.fromkeys(s for d in definitions for s in d.aws_services))
    broker = memory_broker or MemoryBroker()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            aws = await stack.enter_async_context(AwsClients(first, services=aws_services))
            await open_budget(aws, first)
            app.state.rate_limiter = await open_rate_limiter(aws, first)
            components: list[Component] = []
            for definition in definitions:
                config = configs[definition.name]
                bus = create_bus(config, definition.name, memory_broker=broker)
                component = await definition.build(config, aws, bus)
                for value in component.provides:
                    app.state.provided[type(value)] = value
                components.append(component)
            app.state.readiness.update(readiness(components))
            async with run_components(components):
                yield

    single = len(definitions) == 1
    app = create_app(
        title=title or (definitions[0].title if single else "Belfry"),
        service=definitions[0].name if single else "belfry",
        description=definitions[0].description if single else "",
        routers=[router for d in definitions for router in d.routers],
        lifespan=lifespan,
    )
    app.state.provided = {}
    app.state.verifier = create_verifier(first)
    app.state.settings = first
    return app


def serve(
    definitions: Sequence[ServiceDefinition],
    *,
    settings: Mapping[str, BelfrySettings] | None = None,
    title: str | None = None,
) -> None:
    """Run the app with uvicorn until SIGINT/SIGTERM, then shut down gracefully."""
    app = create_platform_app(definitions, settings=settings, title=title)
    config: BelfrySettings = app.state.settings
    configure_logging(config.log_level, config.log_format)
    refuse_exposed_local_secret(config)
    serve_metrics_apart(config)
    uvicorn.Server(
        server_config(app, config, host=config.host, port=config.port, timeout_graceful_shutdown=30)
    ).run()
