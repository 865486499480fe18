"""Run the emulator in a background thread, for tests and benchmarks.

with running_emulator() as base_url:
    client = boto3.client("chime-sdk-meetings", endpoint_url=base_url, ...)
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import uvicorn

from emulators.chime.app import KEEP_ALIVE_SECONDS, create_app
from emulators.chime.emulator import Emulator

_STARTUP_TIMEOUT_S = 30.0


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening."""

    def __init__(self, config: uvicorn.Config, emulator: Emulator) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.emulator = emulator

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        await self.emulator.aclose()  # lifespan is off: stop its tasks here


@contextlib.contextmanager
def running_emulator(
    host: str = "127.0.0.1", port: int = 0, emulator: Emulator | None = None
) -> Iterator[str]:
    """Serve the emulator on `host:port` (0: a free port) and yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    emulator = emulator or Emulator()
    config = uvicorn.Config(
        create_app(emulator),
        log_level="warning",
        lifespan="off",
        ws_ping_interval=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = _Server(config, emulator)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="chime-emulator", daemon=True
    )
    thread.start()
    try:
        if not server.ready.wait(_STARTUP_TIMEOUT_S) or not server.started:
            raise RuntimeError("the Chime emulator did not start")
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=_STARTUP_TIMEOUT_S)
        sock.close()
