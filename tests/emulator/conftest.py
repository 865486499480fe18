"""One emulator per test session, reset before every test; real boto3 and aiobotocore clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from emulators.chime.control import EmulatorControl
from emulators.chime.testing import running_emulator
from tests.emulator.world import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Clients,
    World,
    boto3_client,
    make_world,
)


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    with running_emulator() as base_url:
        yield base_url


@pytest.fixture(autouse=True)
def _reset_emulator(emulator_url: str) -> None:
    httpx.post(f"{emulator_url}/_emulator/reset").raise_for_status()


@pytest.fixture
async def control(emulator_url: str) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(emulator_url) as client:
        yield client


@pytest.fixture(scope="session")
def identity(emulator_url: str) -> Any:
    return boto3_client("chime-sdk-identity", emulator_url)


@pytest.fixture(scope="session")
def meetings(emulator_url: str) -> Any:
    return boto3_client("chime-sdk-meetings", emulator_url)


@pytest.fixture(scope="session")
def messaging(emulator_url: str) -> Any:
    return boto3_client("chime-sdk-messaging", emulator_url)


@pytest.fixture(scope="session")
async def aio(emulator_url: str) -> AsyncIterator[Clients]:
    session = get_session()
    config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})
    settings: dict[str, Any] = {
        "endpoint_url": emulator_url,
        "config": config,
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
    }
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        yield Clients(
            identity=await enter(session.create_client("chime-sdk-identity", **settings)),
            meetings=await enter(session.create_client("chime-sdk-meetings", **settings)),
            messaging=await enter(session.create_client("chime-sdk-messaging", **settings)),
        )


@pytest.fixture
def world(identity: Any) -> World:
    return make_world(identity)
