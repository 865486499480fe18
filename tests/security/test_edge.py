"""What one client may cost, at the edge of `make run` (a real process, real
sockets): bodies, JSON depth, header size and time, security headers, the
shipped secret. The edge is the same code for every service alone."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.platform_run.conftest import ROOT, RunningPlatform, platform_env, running_platform

MIB = 1024 * 1024
EVERYWHERE = "0.0.0.0"  # noqa: S104 (what the refusal is about)


@pytest.fixture(scope="module")
def edge_platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningPlatform]:
    # a short header deadline, so the slow client is cut off within the test
    yield from running_platform(
        "memory", None, tmp_path_factory, {"BELFRY_HTTP_HEADER_TIMEOUT_SECONDS": "2"}
    )


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def connect(platform: RunningPlatform) -> socket.socket:
    host, port = platform.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: belfry",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(sock: socket.socket) -> tuple[int, bytes]:
    """The status code of the response on `sock`, and what was read of it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(data.split(b" ", 2)[1]), head + b"\r\n\r\n" + body


def stream_body(sock: socket.socket, total: int, *, chunked: bool) -> threading.Thread:
    """Send `total` bytes of body in the background, until the server stops reading."""

    def run() -> None:
        block = b"x" * (256 * 1024)
        sent = 0
        try:
            while sent < total:
                if chunked:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                else:
                    sock.sendall(block)
                sent += len(block)
        except OSError:
            return  # the server answered and closed: what the test expects

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("authenticated", [False, True], ids=["stranger", "customer"])
async def test_a_100_mib_body_is_refused_without_the_process_growing(
    edge_platform: RunningPlatform, authenticated: bool
) -> None:
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    if authenticated:
        headers["Authorization"] = f"Bearer {await edge_platform.token('carl', 'customer')}"
    async with httpx.AsyncClient(base_url=edge_platform.url) as client:  # warm: first use
        warm = {k: v for k, v in headers.items() if k != "Transfer-Encoding"}
        await client.post("/chat/attachments", content=b"{}", headers=warm)
    before = rss_bytes(edge_platform.process.pid)
    with connect(edge_platform) as sock:
        sock.sendall(head("POST", "/chat/attachments", headers))
        sender = stream_body(sock, 100 * MIB, chunked=True)
        status, data = status_of(sock)
        with contextlib.suppress(OSError):  # the server may have closed it already
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=30)
    assert status == (413 if authenticated else 401), data
    body = json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}") if not authenticated else None
    if body is not None:
        assert body["error"]["code"] in ("unauthorized", "invalid_token")
    grown = rss_bytes(edge_platform.process.pid) - before
    assert grown < 20 * MIB, f"RSS grew {grown / MIB:.1f} MiB"


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    edge_platform: RunningPlatform,
) -> None:
    token = await edge_platform.token("carl", "customer")
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Length": str(100 * MIB),
    }
    with connect(edge_platform) as sock:
        sock.sendall(head("POST", "/chat/attachments", headers))
        status, data = status_of(sock)  # nothing of the body was sent
    assert status == 413, data
    assert b'"payload_too_large"' in data


async def test_a_body_a_little_over_the_limit_is_read_so_its_413_arrives(
    edge_platform: RunningPlatform,
) -> None:
    token = await edge_platform.token("carl", "customer")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = b"[" + b"1," * 60_000 + b"1]"  # 120 KB, over the 64 KiB of a JSON body
    async with httpx.AsyncClient(base_url=edge_platform.url) as client:
        for _ in range(3):  # the connection stays usable: nothing was left unread
            refused = await client.post("/chat/attachments", content=body, headers=headers)
            assert refused.status_code == 413, refused.text
            assert refused.json()["error"]["code"] == "payload_too_large"
            assert refused.headers.get("connection") != "close"
        assert (await client.get("/rooms", headers=headers)).status_code == 200


async def test_authentication_comes_before_the_body(edge_platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=edge_platform.url) as client:
        response = await client.post(
            "/chat/attachments", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_deep_json_is_a_400_not_a_500(edge_platform: RunningPlatform) -> None:
    token = await edge_platform.token("carl", "customer")
    deep = "[" * 10_000 + "]" * 10_000
    async with httpx.AsyncClient(base_url=edge_platform.url) as client:
        response = await client.post(
            "/chat/attachments",
            content=deep,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert "Traceback" not in edge_platform.logs()


def test_a_slow_header_client_is_cut_off(edge_platform: RunningPlatform) -> None:
    started = time.monotonic()
    with connect(edge_platform) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        closed_after = None
        for byte in b"X-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.1)  # the slow client's pace, not a wait for the server
            sock.settimeout(0)
            try:
                if sock.recv(65536, socket.MSG_PEEK):
                    closed_after = time.monotonic() - started
                    break
            except BlockingIOError:
                pass
            finally:
                sock.settimeout(10)
        assert closed_after is not None, "still connected after 10 s of one byte at a time"
        assert closed_after < 5, closed_after
        status, _ = status_of(sock)
    assert status == 408


def test_oversized_headers_are_refused(edge_platform: RunningPlatform) -> None:
    with connect(edge_platform) as sock:
        sock.sendall(head("GET", "/healthz", {"X-Big": "a" * (5 * MIB)}))
        status, _ = status_of(sock)
    assert status == 431


async def test_every_answer_carries_the_security_headers(edge_platform: RunningPlatform) -> None:
    token = await edge_platform.token("carl", "customer")
    async with httpx.AsyncClient(base_url=edge_platform.url) as client:
        api = await client.get("/rooms", headers={"Authorization": f"Bearer {token}"})
        refused = await client.get("/rooms")
        console = await client.get("/console/")
    for response in (api, refused, console):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers  # it named uvicorn
    assert api.status_code == 200
    assert api.headers["cache-control"] == "no-store"
    assert refused.status_code == 401
    assert refused.headers["cache-control"] == "no-store"
    assert console.status_code == 200
    assert console.headers.get("cache-control") != "no-store"


def test_the_shipped_secret_is_refused_beyond_loopback() -> None:
    env = platform_env(None, "refuse")
    env["BELFRY_HOST"] = EVERYWHERE
    env["BELFRY_PLATFORM_LOCAL_POOL"] = "false"  # HS256 tokens of the shipped secret
    env.pop("BELFRY_AUTH_LOCAL_SECRET", None)
    done = subprocess.run(
        [sys.executable, "-m", "services.platform"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "shipped local signing secret" in lines[0]


def test_a_chosen_secret_is_allowed_beyond_loopback() -> None:
    from shared.http_server import refuse_exposed_local_secret
    from shared.settings import BelfrySettings

    refuse_exposed_local_secret(
        BelfrySettings(host=EVERYWHERE, auth_local_secret=os.urandom(8).hex())
    )
    refuse_exposed_local_secret(BelfrySettings(host=EVERYWHERE, auth_mode="cognito"))
    refuse_exposed_local_secret(BelfrySettings(host="::1"))
