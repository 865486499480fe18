"""`python -m services.platform` in a subprocess, on free ports, for the module's tests;
tokens of its Cognito user pool (in its embedded moto server) the way `make token`
gets them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.platform.identity import PoolAdmin, UserPool
from services.platform.settings import PlatformSettings
from services.platform.tokens import pool_token
from tests.conftest import unique
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
# Settings of the surrounding shell that would point the platform elsewhere.
_INHERITED_OUT = (
    "AMQP_URL",
    "BELFRY_AMQP_URL",
    "BELFRY_AWS_ENDPOINT_URL",
    "BELFRY_CHIME_ENDPOINT_URL",
    "BELFRY_PLATFORM_EMBED_AWS",
    "BELFRY_PLATFORM_EMBED_CHIME",
    "BELFRY_PORT",
    "PORT",
)


@dataclass
class RunningPlatform:
    process: subprocess.Popen[bytes]
    url: str
    chime_url: str
    env: dict[str, str]
    log_path: Path
    transport: str

    @property
    def aws_url(self) -> str:
        """The embedded moto server: DynamoDB, S3 and the Cognito user pool."""
        return f"http://127.0.0.1:{self.env['BELFRY_PLATFORM_LOCAL_AWS_PORT']}"

    async def token(self, username: str, *groups: str) -> str:
        """An access token of the platform's user pool for `username`, whose groups
        become exactly `groups`: `make token`'s code path."""
        return await pool_token(PlatformSettings(), username, groups, endpoint=self.aws_url)

    async def user_pool(self) -> UserPool:
        async with PoolAdmin(self.aws_url, PlatformSettings().aws_region) as admin:
            return await admin.find_pool()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the stop took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started


def platform_env(transport_url: str | None, test_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_OUT}
    env.update(
        {
            "BELFRY_PORT": str(free_port()),
            "BELFRY_PLATFORM_LOCAL_AWS_PORT": str(free_port()),
            "BELFRY_PLATFORM_LOCAL_CHIME_PORT": str(free_port()),
            "BELFRY_TABLE_PREFIX": test_id,
            "BELFRY_LOG_FORMAT": "json",
            "BELFRY_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if transport_url is not None:
        env.update(
            {
                "AMQP_URL": transport_url,
                "BELFRY_EXCHANGE": f"{test_id}.events",
                "BELFRY_DEAD_LETTER_EXCHANGE": f"{test_id}.dlx",
                "BELFRY_QUEUE_PREFIX": f"{test_id}.",
                # One retry level: fewer quorum queues on the shared broker.
                "BELFRY_RETRY_DELAYS_SECONDS": "[0.5]",
            }
        )
    return env


def wait_ready(platform: RunningPlatform, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if platform.process.poll() is not None:
            pytest.fail(
                f"the platform exited with {platform.process.returncode} during start-up:\n"
                f"{platform.tail()}",
                pytrace=False,
            )
        try:
            if httpx.get(f"{platform.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz not 200 within {timeout:g} s:\n{platform.tail()}", pytrace=False)
        time.sleep(0.2)


@pytest.fixture(scope="module", params=["memory", "amqp"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    """The whole platform in its own process, on free ports, its log in a file. The
    module's last test stops it; if it is still running at the end, it is stopped here."""
    transport = request.param
    amqp = request.getfixturevalue("amqp_url") if transport == "amqp" else None
    yield from running_platform(transport, amqp, tmp_path_factory)


@pytest.fixture(scope="module")
def memory_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """`platform` on the in-process bus only."""
    yield from running_platform("memory", None, tmp_path_factory)


def running_platform(
    transport: str,
    amqp: str | None,
    tmp_path_factory: pytest.TempPathFactory,
    settings: Mapping[str, str] | None = None,
) -> Iterator[RunningPlatform]:
    """`settings`: more `BELFRY_*` variables for this platform."""
    test_id = unique("p")
    env = {**platform_env(amqp, test_id), **(settings or {})}
    log_path = tmp_path_factory.mktemp(f"platform-{transport}") / "platform.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.platform"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = RunningPlatform(
        process=process,
        url=f"http://127.0.0.1:{env['BELFRY_PORT']}",
        chime_url=f"http://127.0.0.1:{env['BELFRY_PLATFORM_LOCAL_CHIME_PORT']}",
        env=env,
        log_path=log_path,
        transport=transport,
    )
    try:
        wait_ready(running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
