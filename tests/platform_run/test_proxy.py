"""compose's reverse proxy (deploy/compose/proxy/default.conf.template), for real: the
same template, rendered the way the nginx image's entrypoint does (only the variables
docker-compose.yml sets), run by Debian's nginx in front of `python -m services.platform`
(every upstream is the platform's one port: it serves every prefix), and driven as a
browser would through the one origin: the console, `/auth/config`, a signed-in call to
each service, an upload larger than nginx's default body limit, and the WebSocket. And
against a recording upstream: the headers a service gets, and the proxy's own JSON
answers for a service that is down and a body that is too large."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx
import pytest
from websockets.asyncio.client import connect

from services.platform.console_app import CONSOLE_DIR
from tests.conftest import in_ci
from tests.platform_run.conftest import ROOT, RunningPlatform
from tests.support import free_port

TEMPLATE = ROOT / "deploy" / "compose" / "proxy" / "default.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MIME_TYPES = Path("/etc/nginx/mime.types")

# Without nginx the module is skipped; under CI=true it fails instead (tests/conftest.py).
pytestmark = pytest.mark.skipif(
    not Path(NGINX).is_file() and not in_ci(),
    reason="nginx is not installed (Debian: apt-get install nginx)",
)


def render(variables: dict[str, str]) -> str:
    """envsubst as the nginx image runs it: `${NAME}` of the given variables only."""
    rendered = Template(TEMPLATE.read_text()).safe_substitute(variables)
    assert "${" not in rendered, "a variable of the template is not set"
    return rendered


def main_config(prefix: Path, server: Path) -> str:
    """What the nginx image's own nginx.conf gives the template: an `http` block
    (mime types, temp paths), here in a throw-away prefix directory."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    include {MIME_TYPES};
    default_type application/octet-stream;
{temp}
    include {server};
}}
"""


@dataclass
class Proxy:
    url: str
    log: Path
    error_log: Path

    def tail(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-3000:] for path in (self.log, self.error_log)
        )


def upstreams(**by_service: str) -> dict[str, str]:
    """The template's variables but the listen address: every upstream `default`
    unless named (`chat="127.0.0.1:1"`)."""
    default = by_service.pop("default")
    return {
        "PROXY_RESOLVER": "127.0.0.1",  # never asked: the upstreams are addresses here
        "CONSOLE_DIR": str(CONSOLE_DIR),
        **{
            f"{name.upper()}_UPSTREAM": by_service.get(name, default)
            for name in ("scheduler", "rooms", "chat", "notifier")
        },
    }


@contextlib.contextmanager
def running_nginx(prefix: Path, variables: dict[str, str]) -> Iterator[Proxy]:
    """Debian's nginx on a free port with the rendered template, in the foreground."""
    port = free_port()
    server = prefix / "belfry.conf"
    server.write_text(render({**variables, "PROXY_LISTEN": f"127.0.0.1:{port}"}))
    config = prefix / "nginx.conf"
    config.write_text(main_config(prefix, server))
    log, error_log = prefix / "access.log", prefix / "error.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(config), "-e", str(error_log)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Proxy(f"http://127.0.0.1:{port}", log, error_log)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"nginx exited with {process.returncode}:\n{running.tail()}")
            try:
                if httpx.get(f"{running.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"nginx did not answer:\n{running.tail()}")
            time.sleep(0.1)
        yield running
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def proxy(
    memory_platform: RunningPlatform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    """The proxy in front of the platform: every upstream is its one port."""
    upstream = memory_platform.url.removeprefix("http://")
    with running_nginx(tmp_path_factory.mktemp("nginx"), upstreams(default=upstream)) as proxy:
        yield proxy


async def test_the_console_and_the_shared_routes_are_on_the_one_origin(proxy: Proxy) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
        home = await http.get("/")
        assert home.status_code == 307
        assert home.headers["location"] == "/console/"
        page = await http.get("/console/")
        assert page.status_code == 200, proxy.tail()
        assert 'src="app.js"' in page.text
        script = await http.get("/console/app.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        asyncapi = await http.get("/asyncapi.yaml")
        assert asyncapi.status_code == 200
        assert "\nasyncapi: 3" in asyncapi.text
        for service, prefix in (
            ("scheduler", "/schedule"),
            ("rooms", "/rooms"),
            ("chat", "/chat"),
            ("notifier", "/notifications"),
        ):
            document = await http.get(f"/openapi/{service}.json")
            assert document.status_code == 200, (service, document.text)
            assert any(path.startswith(prefix) for path in document.json()["paths"]), service
        unknown = await http.get("/no-such-path")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"


async def test_a_signed_in_flow_reaches_every_service_through_the_proxy(
    proxy: Proxy, memory_platform: RunningPlatform
) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, timeout=15) as http:
        # What the console does first: where to sign in, asked of the same origin.
        config = await http.get("/auth/config")
        assert config.status_code == 200, config.text
        assert config.json()["mode"] == "cognito"
        token = await memory_platform.token("alice", "admin")
        bearer = {"authorization": f"Bearer {token}"}
        for path in ("/schedule", "/rooms", "/chat/channels", "/notifications/mentions"):
            response = await http.get(path, headers=bearer)
            assert response.status_code == 200, (path, response.text)
        # The correlation id goes through both ways; without one, nginx's request id
        # is the one the service logs and answers.
        mine = await http.get("/rooms", headers={**bearer, "x-correlation-id": "proxy-test-1"})
        assert mine.headers["x-correlation-id"] == "proxy-test-1"
        theirs = await http.get("/rooms", headers=bearer)
        assert len(theirs.headers["x-correlation-id"]) == 32
        assert theirs.headers["x-correlation-id"] in proxy.log.read_text()
        # A body above nginx's default limit (1 MiB) reaches chat (an attachment).
        carl = {"authorization": f"Bearer {await memory_platform.token('carl', 'customer')}"}
        body = b"%PDF-1.4 " + b"x" * (3 * 1024 * 1024)
        upload = await http.post(
            "/chat/attachments",
            files={"file": ("big.pdf", body, "application/pdf")},
            headers=carl,
        )
        assert upload.status_code == 201, upload.text
        assert upload.json()["size"] == len(body)


async def test_the_notifications_websocket_upgrades_through_the_proxy(
    proxy: Proxy, memory_platform: RunningPlatform
) -> None:
    token = await memory_platform.token("mia", "manager")
    url = proxy.url.replace("http", "ws", 1) + "/notifications/ws"
    async with connect(url, open_timeout=10) as websocket:
        await websocket.send(json.dumps({"type": "auth", "token": token}))
        first = json.loads(await asyncio.wait_for(websocket.recv(), 10))
    assert first["type"] == "session.ready", first


@contextlib.contextmanager
def echoing() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An upstream that answers 200 and records each request's path and headers."""
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_what_the_proxy_tells_a_service_and_what_it_says_when_one_is_down(
    tmp_path: Path,
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    with (
        echoing() as (echo, seen),
        running_nginx(tmp_path, upstreams(default=echo, chat=closed)) as proxy,
    ):
        answer = httpx.get(f"{proxy.url}/rooms/r1?x=1", headers={"x-forwarded-for": "10.1.2.3"})
        assert answer.status_code == 200, proxy.tail()
        (request,) = seen
        assert request["path"] == "/rooms/r1?x=1"  # the prefix and the query, unchanged
        host = proxy.url.removeprefix("http://")
        assert request["host"] == host
        assert request["x-forwarded-host"] == host
        assert request["x-forwarded-proto"] == "http"
        assert request["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
        assert request["x-real-ip"] == "127.0.0.1"
        assert len(request["x-correlation-id"]) == 32  # nginx's $request_id
        assert "upgrade" not in request  # no Connection: upgrade for a plain request
        assert request.get("connection", "close") != "upgrade"

        down = httpx.get(f"{proxy.url}/chat/channels", headers={"x-correlation-id": "c-1"})
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "upstream_unavailable"
        assert down.headers["retry-after"] == "5"
        assert down.headers["x-correlation-id"] == "c-1"

        too_large = httpx.post(f"{proxy.url}/rooms/x", content=b"x" * (34 * 1024 * 1024))
        assert too_large.status_code == 413
        assert too_large.json()["error"]["code"] == "payload_too_large"
