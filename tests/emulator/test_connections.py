"""The emulator keeps idle HTTP connections open like an AWS endpoint, longer
than uvicorn's default of 5 s, so pooled SDK connections are not cut under them."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

from emulators.chime.app import KEEP_ALIVE_SECONDS

REQUEST = b"GET /_emulator/health HTTP/1.1\r\nHost: emulator\r\n\r\n"


def _request(sock: socket.socket) -> bytes:
    sock.sendall(REQUEST)
    return sock.recv(65536)


async def test_an_idle_connection_outlives_uvicorns_default_keep_alive(emulator_url: str) -> None:
    assert KEEP_ALIVE_SECONDS > 60
    parts = urlsplit(emulator_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        assert _request(sock).startswith(b"HTTP/1.1 200")
        # idle for longer than uvicorn's default (5 s): the idle time is the subject
        await asyncio.sleep(6)
        assert _request(sock).startswith(b"HTTP/1.1 200"), "the server closed the connection"
