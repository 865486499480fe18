"""Notifier WebSockets end with their token and are capped per user, over moto
server (the session leases, the Cognito pool) and the Chime emulator: closed
4401 at `exp` unless renewed by an auth frame, 4401 once Cognito revoked the
token, 4429 beyond the per-user cap on every replica (RabbitMQ)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from aiobotocore.session import get_session
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.notifier.adapters.sessions import (
    SESSIONS_TABLE,
    DynamoSessionLeases,
    MemorySessionLeases,
)
from services.notifier.bootstrap import definition
from services.notifier.settings import NotifierSettings
from services.platform.identity import PoolAdmin, sign_in
from shared.auth import mint_local_token
from shared.aws import AwsClients, local_credentials
from shared.bus import MemoryBroker, create_bus
from shared.dynamo import ensure_tables
from shared.errors import ServiceUnavailable
from shared.events import Producer, RoomUpdated
from shared.service import create_platform_app
from shared.settings import BelfrySettings
from tests.notifier.conftest import ws_url
from tests.support import serving, wait_until

READY = "session.ready"


def exp_of(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


async def open_socket(base: str, token: str) -> ClientConnection:
    """A WebSocket signed in with a first auth frame; returns after `session.ready`."""
    ws = await connect(ws_url(base), max_queue=None)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame["type"] == READY, frame
    return ws


async def closed(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, str | None]:
    """Read until the server closes; its close code and reason."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


async def refused(base: str, token: str) -> tuple[int | None, str | None]:
    """A socket the server closes before `session.ready`."""
    async with connect(ws_url(base)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        return await closed(ws)


@contextlib.asynccontextmanager
async def memory_notifier(
    settings: NotifierSettings, verifier: Any = None
) -> AsyncIterator[tuple[str, Any]]:
    """The notifier on the in-process bus (as in `make run`); its base URL and a
    rooms-side bus to publish on."""
    broker = MemoryBroker()
    app = create_platform_app([definition], settings={"notifier": settings}, memory_broker=broker)
    if verifier is not None:
        app.state.verifier = verifier
    rooms = create_bus(settings, "rooms", memory_broker=broker)
    await rooms.start()
    try:
        async with serving(app) as base:
            yield base, rooms
    finally:
        await rooms.stop()


# --- sessions end with their token ----------------------------------------------------


async def test_a_socket_is_closed_4401_at_its_tokens_exp(
    notifier_settings: Callable[..., NotifierSettings],
) -> None:
    settings = notifier_settings(amqp_url="memory://")
    async with memory_notifier(settings) as (base, _):
        token = mint_local_token(settings, "u-short", ["customer"], ttl_seconds=3)
        opened = time.time()
        ws = await open_socket(base, token)
        code, reason = await closed(ws)
        at = time.time()
    assert (code, reason) == (4401, "token_expired")
    assert exp_of(token) - 0.05 <= at <= exp_of(token) + 1.0  # at exp, no leeway
    assert 1.9 <= at - opened <= 4.0  # "about 3 s" (exp is a whole second)


async def test_a_socket_that_renews_in_time_stays_open_past_the_first_exp(
    notifier_settings: Callable[..., NotifierSettings],
) -> None:
    settings = notifier_settings(amqp_url="memory://")
    async with memory_notifier(settings) as (base, rooms):
        first = mint_local_token(settings, "u-renew", ["customer"], ttl_seconds=3)
        ws = await open_socket(base, first)
        fresh = mint_local_token(settings, "u-renew", ["customer"], ttl_seconds=120)
        await ws.send(json.dumps({"type": "auth", "token": fresh}))
        renewed = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert renewed == {"type": "session.renewed", "data": {"expires_at": int(exp_of(fresh))}}
        await asyncio.sleep(max(0.0, exp_of(first) - time.time()) + 1.5)
        # past the first token's exp: still open, and still delivering
        room = RoomUpdated(room_id="r1", title="Late", status="active", attendee_count=1, version=1)
        await rooms.publish(Producer("rooms")(room))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "room.updated"
        assert frame["data"]["room_id"] == "r1"
        await ws.close()


async def test_a_renewal_with_someone_elses_or_a_bad_token_closes_4401(
    notifier_settings: Callable[..., NotifierSettings],
) -> None:
    settings = notifier_settings(amqp_url="memory://")
    async with memory_notifier(settings) as (base, _):
        mine = mint_local_token(settings, "u-a", ["customer"], ttl_seconds=60)
        ws = await open_socket(base, mine)
        other = mint_local_token(settings, "u-b", ["manager"], ttl_seconds=600)
        await ws.send(json.dumps({"type": "auth", "token": other}))
        assert await closed(ws) == (4401, "subject_mismatch")
        ws = await open_socket(base, mine)
        await ws.send(json.dumps({"type": "auth", "token": "eyJ.junk.token"}))
        assert await closed(ws) == (4401, "invalid_token")
        # unrelated frames are ignored, the session stays
        ws = await open_socket(base, mine)
        await ws.send(json.dumps({"type": "something"}))
        await ws.send("not json")
        await ws.ping()
        await asyncio.sleep(0.2)
        assert ws.close_code is None
        await ws.close()


# --- revocation (Cognito mode, moto's user pool) --------------------------------------


async def test_a_revoked_token_is_refused_over_http_and_closes_an_open_socket(
    notifier_settings: Callable[..., NotifierSettings], moto_url: str
) -> None:
    region = BelfrySettings().aws_region
    async with PoolAdmin(moto_url, region) as admin:
        pool = await admin.ensure_pool(name=f"belfry-test-{uuid.uuid4().hex[:8]}")
        await admin.ensure_user(pool, "rita", ["customer"])
        await admin.ensure_user(pool, "rob", ["customer"])
    settings = notifier_settings(
        amqp_url="memory://", **pool.service_settings(), cognito_revocation_check_seconds=1.0
    )
    rita, rob = await sign_in(pool, "rita"), await sign_in(pool, "rob")
    async with memory_notifier(settings) as (base, _), httpx.AsyncClient(base_url=base) as http:

        async def status(token: str) -> tuple[int, str | None]:
            answer = await http.get(
                "/notifications/mentions", headers={"authorization": f"Bearer {token}"}
            )
            code = answer.json()["error"]["code"] if answer.status_code != 200 else None
            return answer.status_code, code

        assert await status(rita) == (200, None)
        ws = await open_socket(base, rita)
        bystander = await open_socket(base, rob)
        async with get_session().create_client(  # type: ignore[call-overload]
            "cognito-idp", region_name=region, endpoint_url=moto_url, **local_credentials(moto_url)
        ) as cognito:
            await cognito.global_sign_out(AccessToken=rita)
        started = time.monotonic()
        assert await closed(ws, timeout=10) == (4401, "token_revoked")
        assert time.monotonic() - started <= 3.0  # within the 1 s period (and its jitter)

        async def refused_over_http() -> bool:
            return (await status(rita))[0] == 401

        await wait_until(refused_over_http, timeout=5, message="rita refused over HTTP")
        assert await status(rita) == (401, "token_revoked")
        assert await refused(base, rita) == (4401, "token_revoked")
        assert await status(rob) == (200, None)  # only rita signed out
        assert bystander.close_code is None
        await bystander.close()


class PoolDown:
    """A verifier whose user pool has been unreachable for longer than its grace."""

    async def verify(self, token: str) -> Any:
        raise ServiceUnavailable("cannot check the token", code="auth_unavailable")


async def test_a_pool_down_beyond_its_grace_closes_1013_not_4401(
    notifier_settings: Callable[..., NotifierSettings],
) -> None:
    settings = notifier_settings(amqp_url="memory://")
    async with memory_notifier(settings, PoolDown()) as (base, _):
        assert await refused(base, "any-token") == (1013, "auth_unavailable")


# --- at most N sockets per user --------------------------------------------------------


async def test_the_eleventh_socket_of_a_user_gets_4429_across_replicas(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str
) -> None:
    """Two notifier replicas over RabbitMQ share the leases in moto's DynamoDB."""
    one = notifier_settings(amqp_url=amqp_url, instance_id="cap-a", notifier_ws_max_per_user=10)
    two = notifier_settings(amqp_url=amqp_url, instance_id="cap-b", notifier_ws_max_per_user=10)
    apps = [create_platform_app([definition], settings={"notifier": s}) for s in (one, two)]
    token = mint_local_token(one, "u-many", ["customer"], ttl_seconds=600)
    other = mint_local_token(one, "u-other", ["customer"], ttl_seconds=600)
    async with serving(apps[0]) as a, serving(apps[1]) as b:
        # ten at once, five on each replica: racing writers of one user's leases
        sockets = await asyncio.gather(*(open_socket(u, token) for u in [a, b] * 5))
        assert await refused(a, token) == (4429, "too_many_sessions")
        assert await refused(b, token) == (4429, "too_many_sessions")
        unaffected = await open_socket(b, other)
        await sockets[0].close()  # a place frees up
        eleventh = await open_socket(a, token)
        assert await refused(b, token) == (4429, "too_many_sessions")
        for ws in [*sockets[1:], eleventh, unaffected]:
            assert ws.close_code is None
            await ws.close()


async def test_the_cap_holds_on_the_memory_bus(
    notifier_settings: Callable[..., NotifierSettings],
) -> None:
    settings = notifier_settings(amqp_url="memory://", notifier_ws_max_per_user=2)
    async with memory_notifier(settings) as (base, _):
        token = mint_local_token(settings, "u-two", ["manager"], ttl_seconds=600)
        first, second = await open_socket(base, token), await open_socket(base, token)
        assert await refused(base, token) == (4429, "too_many_sessions")
        await first.close()
        third = await open_socket(base, token)
        await second.close()
        await third.close()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("store", ["dynamodb", "memory"])
async def test_leases_of_a_crashed_replica_expire_and_renewals_keep_them(
    store: str, aws: AwsClients, make_settings: Callable[..., BelfrySettings]
) -> None:
    clock = Clock()
    leases: Any
    if store == "dynamodb":
        settings = make_settings()
        tables = await ensure_tables(
            aws.dynamodb, settings.table_prefix, "notifier", [SESSIONS_TABLE]
        )
        leases = DynamoSessionLeases(aws.dynamodb, tables["sessions"], clock=clock)
    else:
        leases = MemorySessionLeases(clock=clock)
    assert await leases.acquire("u", "s1", 2, 30)
    assert await leases.acquire("u", "s2", 2, 30)
    assert not await leases.acquire("u", "s3", 2, 30)
    assert await leases.acquire("v", "s9", 2, 30)  # another user has their own count
    clock.now += 20
    assert await leases.renew("u", "s1", 30)  # s1's replica is alive; s2's crashed
    clock.now += 15  # s2 expired 5 s ago, s1 holds until +50
    assert await leases.acquire("u", "s3", 2, 30)
    assert not await leases.renew("u", "s2", 30)  # gone: its replica must acquire again
    assert not await leases.acquire("u", "s2", 2, 30)
    await leases.release("u", "s1")
    await leases.release("u", "s1")  # twice is fine
    assert await leases.acquire("u", "s2", 2, 30)
