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

import asyncio
import contextlib
import errno
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
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
from shared.settings_errors import load_settings
from shared.tracing import configured as configured_tracing

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
            stack.enter_context(configured_tracing(first, app.state.service_name))
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
        settings=first,
    )
    app.state.provided = {}
    app.state.service_name = definitions[0].name if single else "belfry"
    app.state.verifier = create_verifier(first)
    app.state.settings = first
    return app


class PortsUnavailable(RuntimeError):
    """Ports a process needs are taken (or cannot be bound): every one of them,
    each with the setting that moves it, in one message."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            lines = "\n  ".join(self.problems)
            super().__init__(f"{len(self.problems)} ports are not available:\n  {lines}")


@dataclass(frozen=True)
class PortNeed:
    """A port a process listens on: what it is for and the setting that moves it."""

    host: str
    port: int
    what: str
    setting: str


def _bind(need: PortNeed) -> socket.socket | str:
    family = socket.AF_INET6 if ":" in need.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((need.host, need.port))
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
        return (
            f"{need.what}: {need.host}:{need.port} {reason}; "
            f"choose another port with {need.setting}"
        )
    sock.set_inheritable(True)
    return sock


def bind_ports(needs: Sequence[PortNeed]) -> list[socket.socket]:
    """A bound TCP socket per need, in order; if any port is taken, none is kept and
    `PortsUnavailable` names every one that is (not just the first)."""
    results = [_bind(need) for need in needs]
    problems = [r for r in results if isinstance(r, str)]
    sockets = [r for r in results if isinstance(r, socket.socket)]
    if problems:
        for sock in sockets:
            sock.close()
        raise PortsUnavailable(problems)
    return sockets


def metrics_need(settings: BelfrySettings) -> list[PortNeed]:
    """`BELFRY_METRICS_PORT`'s listener, when set."""
    if settings.metrics_port is None:
        return []
    return [PortNeed(settings.host, settings.metrics_port, "/metrics", "BELFRY_METRICS_PORT")]


def start_metrics_apart(settings: BelfrySettings, probe: socket.socket | None) -> None:
    """/metrics on its own port: the probe socket that checked the port is let go
    and prometheus_client binds it at once."""
    if probe is not None:
        probe.close()
    serve_metrics_apart(settings)


class StartupCancelled(Exception):
    """SIGINT/SIGTERM arrived before the process was serving; start-up was cancelled."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.signal = sig

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal)  # as a shell reports a process a signal ended: 130, 143


def cancelled_start_up(exc: StartupCancelled, what: str) -> int:
    """The one line a cancelled start-up prints; its exit code."""
    print(f"belfry: {what} start-up cancelled by {exc.signal.name}", file=sys.stderr, flush=True)
    return exc.exit_code


def _exit_now() -> None:
    print("belfry: stopped by a second signal before the shutdown finished", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


class Signals:
    """SIGINT/SIGTERM of a serving process. While it starts, the first cancels the
    start-up (inside `starting()`: `StartupCancelled`); once it serves, the first asks
    for a graceful stop (`requested`, `on_stop`) and a second one calls `on_force`
    (by default: end the process at once, exit code 1)."""

    def __init__(
        self,
        on_stop: Callable[[], object] | None = None,
        on_force: Callable[[], object] = _exit_now,
    ) -> None:
        self.received: signal.Signals | None = None
        self.requested = asyncio.Event()
        self._on_stop = on_stop
        self._on_force = on_force
        self._starting: asyncio.Task[Any] | None = None

    @property
    def signal_name(self) -> str | None:
        return self.received.name if self.received is not None else None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._handle, sig)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """A signal inside the block cancels the current task: `StartupCancelled`."""
        task = asyncio.current_task()
        assert task is not None
        self._starting = task
        try:
            yield
        except asyncio.CancelledError:
            if self.received is None or task.cancelling() > 1:
                raise
            task.uncancel()
            raise StartupCancelled(self.received) from None
        finally:
            self._starting = None
        if self.received is not None:  # it arrived as the block was finishing
            raise StartupCancelled(self.received)

    def _handle(self, sig: signal.Signals) -> None:
        if self.received is not None:
            log.warning("service.forced_stop", signal=sig.name)
            self._on_force()
            return
        self.received = sig
        self.requested.set()
        if self._starting is not None:
            log.info("service.start_up_cancelled", signal=sig.name)
            self._starting.cancel()
            return
        log.info("service.stop_requested", signal=sig.name)
        if self._on_stop is not None:
            self._on_stop()


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: `Signals` decides."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(
    definitions: Sequence[ServiceDefinition],
    *,
    settings: Mapping[str, BelfrySettings] | None = None,
    title: str | None = None,
) -> None:
    """Run the app with uvicorn until SIGINT/SIGTERM, then shut down gracefully.

    Settings errors are one line per variable (exit 2); every port is bound before
    anything starts and all busy ones are named at once (exit 2); a signal during
    start-up (a broker still retried, say) cancels it at once (exit 128 + signal);
    after a graceful stop the exit code is 0."""
    configs = dict(settings or {})
    for d in definitions:
        if d.name not in configs:
            configs[d.name] = load_settings(d.settings_type)
    config = configs[definitions[0].name]
    configure_logging(config.log_level, config.log_format)
    refuse_exposed_local_secret(config)
    try:
        http, *metrics = bind_ports(
            [
                PortNeed(config.host, config.port, "the HTTP server", "BELFRY_PORT"),
                *metrics_need(config),
            ]
        )
    except PortsUnavailable as exc:
        print(f"belfry: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    start_metrics_apart(config, metrics[0] if metrics else None)
    app = create_platform_app(definitions, settings=configs, title=title)
    name = definitions[0].name if len(definitions) == 1 else "belfry"
    try:
        code = asyncio.run(_serve(app, config, http))
    except StartupCancelled as exc:
        code = cancelled_start_up(exc, name)
        # What start-up opened is closed: leave now rather than after the interpreter's
        # teardown, which takes a second or more of a busy machine.
        sys.stdout.flush()
        os._exit(code)
    if code:
        raise SystemExit(code)


async def _serve(app: FastAPI, config: BelfrySettings, sock: socket.socket) -> int:
    server = _QuietServer(server_config(app, config, lifespan="off", timeout_graceful_shutdown=30))

    def stop() -> None:
        server.should_exit = True

    signals = Signals(on_stop=stop)
    signals.install()
    try:
        async with contextlib.AsyncExitStack() as stack:
            with signals.starting():
                await stack.enter_async_context(app.router.lifespan_context(app))
            await server.serve(sockets=[sock])
    finally:
        signals.uninstall()
        sock.close()
    return 0
