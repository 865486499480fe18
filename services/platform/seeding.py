"""What `make run` starts with: the local user pool's people (before the services
start, so that they can be told the pool) and who chats with whom (once the
services run, through the public API as an admin would do it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from fastapi import FastAPI

from shared.auth import ADMIN
from shared.logging import get_logger

from .identity import SEED_ASSIGNMENTS, SEED_USERS, PoolAdmin, UserPool, sign_in

log = get_logger("belfry.platform")


class SeedingFailed(RuntimeError):
    """The platform's own API refused a seeding call."""


@dataclass(frozen=True)
class SeededPool:
    pool: UserPool
    subs: Mapping[str, str]  # username → sub (the user id in tokens and in the API)


async def seed_pool(
    endpoint: str, region: str, users: Mapping[str, Iterable[str]] = SEED_USERS
) -> SeededPool:
    """Find or create the pool, its app client and groups, and the seeded users."""
    async with PoolAdmin(endpoint, region) as admin:
        pool = await admin.ensure_pool()
        subs = await admin.seed(pool, users)
    log.info(
        "platform.pool_seeded",
        user_pool_id=pool.user_pool_id,
        client_id=pool.client_id,
        users={name: {"sub": subs[name], "groups": sorted(users[name])} for name in subs},
    )
    return SeededPool(pool, subs)


async def seed_chats(
    app: FastAPI,
    seeded: SeededPool,
    assignments: Iterable[tuple[str, str]] = SEED_ASSIGNMENTS,
    users: Mapping[str, Iterable[str]] = SEED_USERS,
) -> None:
    """Each seeded person signs in to chat once (chat learns their role and name),
    then an admin assigns each customer their manager: `PUT
    /chat/customers/{customer}/manager`, through `app` in this process."""
    # In a task of its own: the app, called in process, binds the caller to the log
    # context, which must not stay bound to the platform's own lines afterwards.
    await asyncio.create_task(_seed_chats(app, seeded, tuple(assignments), users))


async def _seed_chats(
    app: FastAPI,
    seeded: SeededPool,
    assignments: tuple[tuple[str, str], ...],
    users: Mapping[str, Iterable[str]],
) -> None:
    admin = next(name for name, groups in users.items() if ADMIN in groups)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://belfry.local") as api:
        tokens = {name: await sign_in(seeded.pool, name) for name in seeded.subs}
        for name, token in tokens.items():
            response = await api.get("/chat/channels", headers=_bearer(token))
            _expect(response, f"GET /chat/channels as {name}")
        for customer, manager in assignments:
            path = f"/chat/customers/{quote(seeded.subs[customer], safe='')}/manager"
            response = await api.put(
                path, headers=_bearer(tokens[admin]), json={"manager_id": seeded.subs[manager]}
            )
            _expect(response, f"assigning {customer} to {manager}")
    log.info(
        "platform.chats_seeded",
        assignments=[{"customer": c, "manager": m} for c, m in assignments],
    )


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _expect(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        raise SeedingFailed(f"{what}: {response.status_code} {response.text[:300]}")
