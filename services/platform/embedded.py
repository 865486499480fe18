"""The local stand-ins, embedded in the platform process for `make run`.

- moto server (DynamoDB, S3): `emulators.aws`, serialised, served by werkzeug in a
  background thread. A thread rather than a subprocess: nothing is left behind when
  the platform is killed, and a local run's load is small (moto holds the GIL while
  it answers, which a subprocess would avoid on a busy machine).
- the Chime SDK emulator: `emulators.chime`, an ASGI app served by a second
  uvicorn server on the platform's own event loop.

Every port is bound before anything starts (`shared.service.bind_ports`), so that
busy ports are one clear error naming all of them instead of a half-started platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn

from shared.logging import get_logger
from shared.service import PortNeed, PortsUnavailable, bind_ports

log = get_logger("belfry.platform")


# A busy port: `shared.service.PortsUnavailable`, which names every busy port at once.
PortUnavailable = PortsUnavailable


def bind_socket(host: str, port: int, what: str, setting: str) -> socket.socket:
    """A listening-ready TCP socket on host:port, or `PortUnavailable` naming the setting."""
    return bind_ports([PortNeed(host, port, what, setting)])[0]


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - display only
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the platform: uvicorn's own handlers
    would re-raise SIGTERM after the graceful shutdown, ending the process with
    -15 before the stand-ins are stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def embedded_aws(sock: socket.socket) -> Iterator[str]:
    """moto server on an already bound socket, in a background thread; yields its URL."""
    # Imported here: moto takes seconds to import, and only an embedded run needs it.
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    from emulators.aws.server import create_app

    # One log line per moto request drowns the platform's own; keep warnings.
    logging.getLogger("werkzeug").setLevel(max(logging.WARNING, logging.getLogger().level))
    host, port = sock.getsockname()[:2]
    sock.listen(128)  # werkzeug uses a passed-in socket as it is
    server = make_server(
        host,
        port,
        create_app(),
        threaded=True,
        request_handler=MotoRequestHandler,
        fd=sock.fileno(),
    )
    sock.close()  # the server holds its own duplicate of the descriptor
    url = url_of(host, port)
    thread = threading.Thread(target=server.serve_forever, name="embedded-moto", daemon=True)
    thread.start()
    log.info("platform.aws_started", url=url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        log.info("platform.aws_stopped")


@dataclass
class ServerTask:
    server: QuietServer
    task: asyncio.Task[None]

    async def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except TimeoutError:
            self.server.force_exit = True
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def start_server(
    config: uvicorn.Config, sock: socket.socket, name: str, timeout: float = 60.0
) -> ServerTask:
    """Serve `config.app` on `sock` in this loop; returns once it accepts requests.
    A failed start-up (the app's lifespan raised) raises `RuntimeError`."""
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not server.started:
        if task.done():
            break
        if loop.time() > deadline:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
            raise RuntimeError(f"{name} did not start within {timeout:g} s")
        await asyncio.sleep(0.05)
    if task.done():
        try:
            task.result()
        except SystemExit as exc:  # uvicorn exits when the lifespan start-up fails
            raise RuntimeError(f"{name} failed to start (exit {exc.code})") from None
        raise RuntimeError(f"{name} stopped during start-up")
    return ServerTask(server, task)


@contextlib.asynccontextmanager
async def embedded_chime(
    sock: socket.socket, *, events_endpoint: str | None = None
) -> AsyncIterator[str]:
    """The Chime SDK emulator on an already bound socket, in this event loop;
    `events_endpoint`: the EventBridge it publishes Chime's meeting events to
    (the account's default bus, as Chime does)."""
    from emulators.chime.app import KEEP_ALIVE_SECONDS, create_app
    from emulators.chime.config import EmulatorConfig
    from emulators.chime.emulator import Emulator

    host, port = sock.getsockname()[:2]
    emulator = Emulator(config=EmulatorConfig(events_endpoint=events_endpoint))
    config = uvicorn.Config(
        create_app(emulator),
        log_config=None,
        lifespan="off",
        access_log=False,
        ws_ping_interval=20,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    running = await start_server(config, sock, "embedded-chime")
    url = url_of(host, port)
    log.info("platform.chime_started", url=url)
    try:
        yield url
    finally:
        await running.stop()
        await emulator.aclose()
        log.info("platform.chime_stopped")
