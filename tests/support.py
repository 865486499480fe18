"""Helpers for tests: bounded waits on conditions, a TCP proxy that can cut
every connection (a broker outage as the client sees it), and isolation on the
shared broker and moto (own names, and deleting a test's topology afterwards)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from shared.bus import create_bus
from shared.bus.amqp import AmqpBus
from shared.settings import BelfrySettings
from shared.topology import durable_bindings

T = TypeVar("T")


def isolated(prefix: str | None = None) -> dict[str, Any]:
    """Settings values that give their holder (a test, or a module's app) its own
    exchanges, queues and tables, and test-friendly timeouts."""
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    return {
        "exchange": f"{prefix}.events",
        "dead_letter_exchange": f"{prefix}.dlx",
        "queue_prefix": f"{prefix}.",
        "table_prefix": prefix,
        "publish_timeout_seconds": 5.0,
        "log_format": "console",
    }


async def drop_topology(settings: BelfrySettings, *extra_queues: str) -> None:
    """Delete the queues a test's services declared (the platform's topology under
    the test's prefix, and `extra_queues`) and its exchanges, right away: quorum
    queues are heavy on a shared broker. For queues whose names the test does not
    know, tests/conftest.py deletes what was declared at the end of the session."""
    if not settings.amqp_url.startswith(("amqp://", "amqps://")):
        return
    bus = create_bus(settings, "cleanup")
    assert isinstance(bus, AmqpBus)
    levels = range(1, len(settings.retry_delays_seconds) + 1)
    for name in (*durable_bindings(), *extra_queues):
        full = settings.queue_prefix + name
        bus.declared_queues += [full, f"{full}.dlq", *(f"{full}.retry.{i}" for i in levels)]
    try:
        await bus.start()
        await bus.delete_topology(exchanges=True)
    except Exception as exc:  # cleaning up must not hide the test's own outcome
        warnings.warn(f"could not delete the test's topology: {exc!r}", stacklevel=1)
    finally:
        await bus.close()


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
    describe: Callable[[], str] | None = None,
) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            state = f" ({describe()})" if describe else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {message}{state}")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream; `drop_all()` cuts every live
    connection at once, `pause()` refuses new ones until `resume()`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused = False

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._paused:
            writer.close()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst, pair))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._close(pair)

    def _close(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self._pairs.discard(pair)
        for writer in pair:
            with contextlib.suppress(Exception):
                writer.transport.abort()

    @property
    def live(self) -> int:
        return len(self._pairs)

    def drop_all(self) -> int:
        pairs = list(self._pairs)
        for pair in pairs:
            self._close(pair)
        return len(pairs)

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    async def stop(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn in this event loop on a free port (real
    HTTP and WebSockets, lifespan included); yields its base URL."""
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=free_port(), log_config=None, lifespan="on", ws_ping_interval=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), timeout=60, message="uvicorn start")
    if task.done():
        task.result()  # raises what failed the start-up
        raise AssertionError("the server stopped during start-up")
    try:
        yield f"http://{host}:{config.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)


@contextlib.asynccontextmanager
async def lifespan_client(app: Any, **headers: str) -> AsyncIterator[Any]:
    """An httpx client calling the app in process, with its lifespan running."""
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://belfry.test", headers=headers
        ) as client:
            yield client
