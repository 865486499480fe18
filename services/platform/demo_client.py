"""The demo's client of the public API: a gateway with tokens, and a
WebSocket feed of notifications it can wait on (bounded, never a bare sleep).

Tokens follow the platform's `GET /auth/config`: with a Cognito user pool (what
`make run` has), each person is a user of that pool (made as `make token` makes
them) who signs in with a password; in local mode they are minted with the
local signing key of the demo's own settings.

The Chime SDK emulator whose control API plays the browsers and ends a meeting is
the one the platform says it uses (`GET /platform/info`), or `--chime-url`; a step
that needs it fails, naming the reason, when there is none or it does not answer."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect

from emulators.chime.control import EmulatorControl, EmulatorControlError
from services.platform.identity import PoolAdmin, UserPool, sign_in
from services.platform.settings import PlatformSettings
from services.platform.timeline import DemoFailed
from shared.auth import AuthConfig, mint_local_token

T = TypeVar("T")
Frame = dict[str, Any]


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll `probe` until it returns something; `DemoFailed` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what}: not seen within {timeout:g} s")
        await asyncio.sleep(interval)


def items_of(body: Any, *keys: str) -> list[dict[str, Any]]:
    """A page's items, whether the body is a list or an object holding one."""
    if isinstance(body, list):
        return body
    for key in (*keys, "items"):
        if isinstance(body, dict) and isinstance(body.get(key), list):
            found: list[dict[str, Any]] = body[key]
            return found
    raise DemoFailed(f"unexpected response shape: {json.dumps(body)[:200]}")


async def user_pool_of(http: httpx.AsyncClient) -> UserPool | None:
    """The user pool the platform signs people in with (`GET /auth/config`); None
    in local mode."""
    response = await http.get("/auth/config")
    if response.status_code != 200:
        raise DemoFailed(f"GET /auth/config answered {response.status_code}: {response.text[:200]}")
    config = AuthConfig.model_validate(response.json())
    if config.mode == "local":
        return None
    if not (config.endpoint and config.region and config.user_pool_id and config.client_id):
        raise DemoFailed(f"GET /auth/config is incomplete: {response.text[:300]}")
    return UserPool(config.endpoint, config.region, config.user_pool_id, config.client_id)


@dataclass(frozen=True)
class Emulator:
    """The Chime SDK emulator the demo drives: its URL and where that came from, or
    why there is none (`url` None)."""

    url: str | None
    source: str
    problem: str = ""


async def find_emulator(http: httpx.AsyncClient, given: str | None) -> Emulator:
    """`given` (`--chime-url`), else the emulator the platform names at
    `GET /platform/info`, else `BELFRY_CHIME_ENDPOINT_URL` for a gateway without it."""
    if given:
        return Emulator(given.rstrip("/"), "--chime-url")
    response = await http.get("/platform/info")
    if response.status_code == 200:
        chime = response.json().get("chime") or {}
        endpoint, control = chime.get("endpoint"), chime.get("emulator_control")
        if endpoint and control:
            return Emulator(str(endpoint).rstrip("/"), "GET /platform/info")
        return Emulator(None, "GET /platform/info", "the platform runs on the real Chime SDK")
    configured = os.environ.get("BELFRY_CHIME_ENDPOINT_URL")
    if configured:
        return Emulator(configured.rstrip("/"), "BELFRY_CHIME_ENDPOINT_URL")
    return Emulator(
        None,
        "GET /platform/info",
        f"the gateway does not say which Chime SDK emulator it uses (GET /platform/info "
        f"answered {response.status_code}); pass --chime-url",
    )


async def reachable(emulator: Emulator) -> str:
    """The emulator's URL once its control API answers; `DemoFailed` saying why not."""
    if emulator.url is None:
        raise DemoFailed(
            f"no Chime SDK emulator to drive: {emulator.problem} "
            "(--no-emulator skips the steps that need one)"
        )
    try:
        async with EmulatorControl(emulator.url, timeout=3) as control:
            healthy = await control.health()
    except (httpx.HTTPError, EmulatorControlError, ValueError) as exc:
        why = str(exc) or type(exc).__name__
        raise DemoFailed(
            f"the Chime SDK emulator at {emulator.url} (from {emulator.source}) is not "
            f"reachable: {why}"
        ) from None
    if not healthy:
        raise DemoFailed(f"the Chime SDK emulator at {emulator.url} reports it is not healthy")
    return emulator.url


class Gateway:
    """HTTP calls through the gateway as one of the demo's people."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: PlatformSettings,
        run: str,
        pool: UserPool | None = None,
    ) -> None:
        self.http = http
        self.settings = settings
        self.run = run
        self.pool = pool
        self.tokens: dict[str, str] = {}
        self.names: dict[str, str] = {}

    async def person(self, name: str, *groups: str) -> str:
        """A person of this run (`<name>-<run>`) in `groups`: their user id, with their
        token kept for `call`."""
        username = f"{name}-{self.run}"
        if self.pool is None:
            user_id = username
            token = mint_local_token(self.settings, user_id, groups, 3600, name)
        else:
            async with PoolAdmin(self.pool.endpoint, self.pool.region) as admin:
                user_id = await admin.ensure_user(self.pool, username, groups)
            token = await sign_in(self.pool, username)
        self.tokens[user_id] = token
        self.names[user_id] = name
        return user_id

    def name(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)

    async def call(
        self, who: str, method: str, path: str, *, expect: Sequence[int] = (200,), **kwargs: Any
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.tokens[who]}"}
        response = await self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code not in expect:
            raise DemoFailed(
                f"{method} {path} as {who} answered {response.status_code}: {response.text[:300]}"
            )
        return response

    async def json(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.call(who, method, path, **kwargs)).json()


class Feed:
    """One person's notification WebSocket: every frame it receives, in order."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.frames: list[Frame] = []
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, base_url: str, token: str) -> None:
        url = base_url.replace("http", "ws", 1).rstrip("/") + "/notifications/ws"
        self._ws = await connect(url, open_timeout=10)
        await self._ws.send(json.dumps({"type": "auth", "token": token}))
        self._reader = asyncio.create_task(self._read())
        # The notifier answers the auth frame (`session.ready`): from then on the
        # session is registered and nothing published later is missed.
        reader = self._reader

        async def answered() -> bool | None:
            if reader.done():
                error = reader.exception()
                raise DemoFailed(f"{self.who}'s WebSocket closed: {error or 'by the server'}")
            return True if self.frames else None

        await eventually(answered, timeout=10, what=f"the answer to {self.who}'s auth frame")
        if self.frames[0].get("type") != "session.ready":
            raise DemoFailed(f"{self.who}'s WebSocket answered {json.dumps(self.frames[0])[:200]}")

    async def _read(self) -> None:
        assert self._ws is not None
        async for raw in self._ws:
            frame = json.loads(raw)
            if isinstance(frame, dict):
                self.frames.append(frame)

    async def wait_for(
        self, kind: str, match: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> Frame:
        async def seen() -> Frame | None:
            if self._reader is not None and self._reader.done():
                error = self._reader.exception()
                raise DemoFailed(f"{self.who}'s WebSocket closed: {error or 'by the server'}")
            for frame in self.frames:
                if frame.get("type") == kind and match(frame.get("data") or {}):
                    return frame
            return None

        return await eventually(seen, timeout=timeout, what=f"{kind} on {self.who}'s WebSocket")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
