"""`make run` signs people in as production does: a Cognito user pool in its
embedded moto server, seeded users and chats, `GET /auth/config`, `make token`,
and every service accepting that pool's tokens and nothing else."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.platform.identity import GROUPS, SEED_USERS, PoolAdmin, sign_in
from services.platform.settings import PlatformSettings
from shared.auth import mint_local_token
from tests.platform_run.conftest import ROOT, RunningPlatform

pytestmark = pytest.mark.slow


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    found: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return found


def signed(claims: dict[str, Any], key: Any, kid: str = "dummy") -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def moto_signing_key() -> Any:
    """The key moto signs every pool's tokens with (what the pool's JWKS publishes)."""
    private = load_resource("cognitoidp/resources/jwks-private.json")
    return jwt.PyJWK(private, algorithm="RS256").key


async def test_the_pool_has_the_groups_and_the_seeded_users(
    memory_platform: RunningPlatform,
) -> None:
    pool = await memory_platform.user_pool()
    async with PoolAdmin(memory_platform.aws_url, PlatformSettings().aws_region) as admin:
        assert await admin.group_names(pool) == set(GROUPS)
        for username, groups in SEED_USERS.items():
            assert await admin.sub_of(pool, username), username
            assert await admin.groups_of(pool, username) == set(groups), username
    seeded = next(
        json.loads(line)
        for line in memory_platform.logs().splitlines()
        if '"platform.pool_seeded"' in line
    )
    assert seeded["user_pool_id"] == pool.user_pool_id
    assert set(seeded["users"]) == set(SEED_USERS)


async def test_auth_config_names_the_pool_and_its_client(memory_platform: RunningPlatform) -> None:
    pool = await memory_platform.user_pool()
    async with httpx.AsyncClient(base_url=memory_platform.url, timeout=10) as http:
        response = await http.get("/auth/config")  # no token: browsers ask before signing in
    assert response.status_code == 200, response.text
    assert response.json() == {
        "mode": "cognito",
        "region": pool.region,
        "user_pool_id": pool.user_pool_id,
        "client_id": pool.client_id,
        "endpoint": memory_platform.aws_url,
    }


async def test_a_seeded_admin_signs_in_and_schedules(memory_platform: RunningPlatform) -> None:
    pool = await memory_platform.user_pool()
    token = await sign_in(pool, "alice", "belfry-local")
    claims = claims_of(token)
    assert claims["iss"] == pool.issuer
    assert claims["cognito:groups"] == ["admin"]
    async with httpx.AsyncClient(base_url=memory_platform.url, timeout=10) as http:
        listed = await http.get("/schedule", headers=auth(token))
        assert listed.status_code == 200, listed.text
        carl = await sign_in(pool, "carl")
        assert (await http.get("/schedule", headers=auth(carl))).status_code == 403


async def test_local_expired_and_forged_tokens_are_refused(
    memory_platform: RunningPlatform,
) -> None:
    pool = await memory_platform.user_pool()
    issued = await sign_in(pool, "alice")
    real = claims_of(issued)
    now = int(time.time())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "HS256, local signing key": mint_local_token(PlatformSettings(), "alice", ["admin"]),
        "expired, the pool's own key": signed(
            {**real, "iat": now - 7200, "exp": now - 3600}, moto_signing_key()
        ),
        "forged: another key, the pool's kid": signed(real, other_key),
        "another pool": signed({**real, "iss": f"{pool.issuer}x"}, moto_signing_key()),
        "another app client": signed({**real, "client_id": "someone-else"}, moto_signing_key()),
        # moto's key is public: signed with it, but never issued by the pool (GetUser)
        "revoked: the pool's key, not issued": signed(real, moto_signing_key()),
    }
    async with httpx.AsyncClient(base_url=memory_platform.url, timeout=10) as http:
        assert (await http.get("/schedule", headers=auth(issued))).is_success
        for what, token in refused.items():
            response = await http.get("/schedule", headers=auth(token))
            assert response.status_code == 401, (what, response.text)
            expected = "token_expired" if what.startswith("expired") else "invalid_token"
            expected = "token_revoked" if what.startswith("revoked") else expected
            assert response.json()["error"]["code"] == expected, (what, response.text)


async def test_make_token_sets_the_groups_exactly(memory_platform: RunningPlatform) -> None:
    username = f"gina-{uuid.uuid4().hex[:6]}"  # a new user: made by the first call
    both = await memory_platform.token(username, "admin", "manager")
    assert sorted(claims_of(both)["cognito:groups"]) == ["admin", "manager"]
    demoted = await memory_platform.token(username, "manager")
    assert claims_of(demoted)["cognito:groups"] == ["manager"]
    assert claims_of(demoted)["sub"] == claims_of(both)["sub"]
    pool = await memory_platform.user_pool()
    async with PoolAdmin(memory_platform.aws_url, PlatformSettings().aws_region) as admin:
        assert await admin.groups_of(pool, username) == {"manager"}
    async with httpx.AsyncClient(base_url=memory_platform.url, timeout=10) as http:
        assert (await http.get("/schedule", headers=auth(both))).status_code == 200
        assert (await http.get("/schedule", headers=auth(demoted))).status_code == 403


def test_make_token_prints_a_pool_token(memory_platform: RunningPlatform) -> None:
    """The command itself (`make token` runs it), with the platform's settings."""
    done = subprocess.run(
        [sys.executable, "-m", "services.platform.tokens", "--sub", "hana", "--groups", "admin"],
        cwd=ROOT,
        env=memory_platform.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert claims_of(token)["username"] == "hana"
    assert claims_of(token)["cognito:groups"] == ["admin"]
    response = httpx.get(f"{memory_platform.url}/schedule", headers=auth(token), timeout=10)
    assert response.status_code == 200, response.text


async def test_carl_is_assigned_to_mia_at_start_up(memory_platform: RunningPlatform) -> None:
    pool = await memory_platform.user_pool()
    async with PoolAdmin(memory_platform.aws_url, PlatformSettings().aws_region) as admin:
        mia = await admin.sub_of(pool, "mia")
        carl = await admin.sub_of(pool, "carl")
    async with httpx.AsyncClient(base_url=memory_platform.url, timeout=10) as http:
        response = await http.get("/chat/channels", headers=auth(await sign_in(pool, "carl")))
    assert response.status_code == 200, response.text
    channels = response.json()["channels"]
    assert [(c["kind"], c["customer_id"], c["manager_id"]) for c in channels] == [
        ("customer", carl, mia)
    ], channels


async def test_the_websocket_takes_pool_tokens_only(memory_platform: RunningPlatform) -> None:
    pool = await memory_platform.user_pool()
    url = memory_platform.url.replace("http", "ws", 1) + "/notifications/ws?token="
    async with connect(url + await sign_in(pool, "mia"), open_timeout=10) as websocket:
        first = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        assert first["type"] == "session.ready", first
    local = mint_local_token(PlatformSettings(), "mia", ["manager"])
    with pytest.raises(ConnectionClosed) as closed:
        async with connect(url + local, open_timeout=10) as websocket:
            await asyncio.wait_for(websocket.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
