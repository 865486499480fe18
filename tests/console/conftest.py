"""The console in Debian's Chromium (Playwright, headless) against `make run`:
the platform in its own process on free ports, with its embedded moto server
(and its Cognito user pool), the Chime emulator and the in-process bus.

Chromium is installed by `make test` (`/usr/bin/chromium`); without it the
tests are skipped, and under `CI=true` they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import in_ci
from tests.platform_run.conftest import ROOT, RunningPlatform, running_platform

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
    """`make run` (`python -m services.platform`, in-process bus) for the module's tests."""
    yield from running_platform("memory", None, tmp_path_factory)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
