"""Fixtures shared by every test: RabbitMQ, moto server, isolated settings.

RabbitMQ comes from `AMQP_URL` (default the local broker), else a
testcontainers RabbitMQ where Docker works. With CI=true an unreachable broker
fails the run instead of skipping the broker tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aio_pika.channel
import aio_pika.exceptions
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from emulators.chime.control import EmulatorControl
from shared import tracing
from shared.aws import AwsClients
from shared.settings import BelfrySettings
from tests.support import free_port, isolated

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def amqp_reachable(url: str, timeout: float = 2.0) -> bool:
    """True if something at the URL's host:port answers the AMQP 0-9-1 handshake."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 5672), timeout
        ) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            s.settimeout(timeout)
            return s.recv(1) == b"\x01"  # a method frame: Connection.Start
    except OSError:
        return False


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


def _rabbitmqctl(*args: str) -> str | None:
    """Run rabbitmqctl if this machine has it and may use it; None otherwise."""
    if shutil.which("rabbitmqctl") is None:
        return None
    try:
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


# Every queue a test declares, recorded by wrapping aio-pika's declare (test-only):
# a test's queues are deleted after it, the rest at the end of the session, one at
# a time. Deleting a vhost that still holds hundreds of quorum queues stalls
# RabbitMQ 3.10 for minutes (and two such deletions at once wedged it), so the
# session vhost is emptied before it is deleted.
_declared_queues: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def _record_declared_queues() -> Iterator[None]:
    original = aio_pika.channel.Channel.declare_queue

    async def recording(self: Any, name: str | None = None, **kwargs: Any) -> Any:
        queue = await original(self, name, **kwargs)
        if name and not kwargs.get("passive"):
            _declared_queues.add(name)
        return queue

    aio_pika.channel.Channel.declare_queue = recording  # type: ignore[method-assign]
    yield
    aio_pika.channel.Channel.declare_queue = original  # type: ignore[method-assign]


async def _delete_queues(url: str, names: Iterable[str]) -> None:
    """Delete the named queues (absent ones are fine), sequentially."""
    names = sorted(names)
    if not names:
        return
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        for name in names:
            try:
                await channel.queue_delete(name, timeout=30)
            except aio_pika.exceptions.AMQPError:
                channel = await connection.channel()  # a failed call closes the channel
    finally:
        await connection.close()


@pytest.fixture(autouse=True)
async def _delete_test_queues(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After a test that used `test_id`, delete the queues named after it."""
    if "test_id" not in request.fixturenames:
        yield
        return
    prefix = f"{request.getfixturevalue('test_id')}."
    yield
    mine = {name for name in _declared_queues if name.startswith(prefix)}
    if mine:
        await _delete_queues(request.getfixturevalue("amqp_url"), mine)
        _declared_queues.difference_update(mine)


def _empty_and_delete_vhost(url: str, vhost: str) -> None:
    queues = (_rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name") or "").split()
    asyncio.run(_delete_queues(_vhost_url(url, vhost), queues))
    _rabbitmqctl("delete_vhost", vhost)


def _vhost_url(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", parts.query, ""))


@contextmanager
def _session_vhost(url: str) -> Iterator[str]:
    """A vhost of this test session on a local broker, deleted at the end, so
    that no queue a test declares outlives the run. Vhosts of sessions whose
    process is gone are removed first. Falls back to the URL as given."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or _rabbitmqctl("list_vhosts") is None:
        yield url
        return
    for line in (_rabbitmqctl("list_vhosts") or "").split():
        if line.startswith("belfry-test-"):
            pid = line.split("-")[2]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                _empty_and_delete_vhost(url, line)
    vhost = f"belfry-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    user = parts.username or "guest"
    if _rabbitmqctl("add_vhost", vhost) is None or (
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*") is None
    ):
        yield url
        return
    isolated = _vhost_url(url, vhost)
    try:
        yield isolated
    finally:
        asyncio.run(_delete_queues(isolated, _declared_queues))
        _declared_queues.clear()
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    if amqp_reachable(url):
        with _session_vhost(url) as isolated:
            yield isolated
        return
    if _docker_works():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(container.port)
            yield f"amqp://guest:guest@{host}:{port}/"
        return
    message = f"RabbitMQ is not reachable at {url} and Docker is not available"
    if in_ci():
        pytest.fail(f"{message}; under CI=true broker tests must run", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode (DynamoDB, S3) in its own process, on a free port."""
    port = free_port()
    process = _start_server("emulators.aws", port, "/moto-api/", "moto server")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def _start_server(module: str, port: int, ready_path: str, name: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=1):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{name} did not start", pytrace=False)
            time.sleep(0.1)


@pytest.fixture(scope="session")
def chime_url() -> Iterator[str]:
    """The Belfry Chime SDK emulator in its own process, on a free port."""
    port = free_port()
    process = _start_server("emulators.chime", port, "/_emulator/health", "the Chime emulator")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
async def chime(chime_url: str) -> AsyncIterator[EmulatorControl]:
    """The emulator's control API, reset before the test (state, counters,
    limits, faults, clock); the limits and faults it set are cleared after it, so
    that a later test on the session's emulator is not throttled by them."""
    async with EmulatorControl(chime_url) as control:
        await control.reset()
        yield control
        await control.clear_limits()
        await control.clear_faults()


@pytest.fixture(scope="session")
async def aws(moto_url: str) -> AsyncIterator[AwsClients]:
    """DynamoDB and S3 clients against the session's moto server."""
    settings = BelfrySettings(aws_endpoint_url=moto_url)
    async with AwsClients(settings, services=("dynamodb", "s3")) as clients:
        yield clients


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def test_id() -> str:
    """A name unique to this test: queue, exchange and table prefixes."""
    return unique()


@pytest.fixture
def make_settings(test_id: str) -> Callable[..., BelfrySettings]:
    """Settings isolated to this test (names prefixed with its id)."""

    def factory(**overrides: Any) -> BelfrySettings:
        values: dict[str, Any] = {**isolated(test_id), "retry_delays_seconds": (0.05, 0.1)}
        values.update(overrides)
        return BelfrySettings(**values)

    return factory


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Belfry's tracer with an in-memory exporter for the test, then tracing off again."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)
    provider.shutdown()
