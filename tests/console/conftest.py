"""The console in Debian's Chromium (Playwright, headless) against `make run`:
the platform in its own process on free ports, with its embedded moto server
(and its Cognito user pool), the Chime emulator and the in-process bus.

Chromium is installed by `make test` (`/usr/bin/chromium`); without it the
tests are skipped, and under `CI=true` they fail instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import in_ci, unique
from tests.platform_run.conftest import ROOT, RunningPlatform, platform_env, wait_ready

CHROMIUM = os.environ.get("BELFRY_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "docs" / "console"
PASSWORD = "belfry-local"  # the local pool's seeded users (docs/sign-in.md)


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (`make test` installs Debian's chromium)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """`make run` (`python -m services.platform`) for the module's tests."""
    env = platform_env(None, unique("ui"))
    log_path = tmp_path_factory.mktemp("console") / "platform.log"
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
        transport="memory",
    )
    try:
        wait_ready(running)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
