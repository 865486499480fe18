"""`make run` for real: the platform in its own process, driven through its one
gateway port, on the in-process bus and on RabbitMQ, then stopped with SIGTERM.

The tests of this module share one platform process per transport; the last
one stops it (and would work alone: the fixture starts it). Everyone signs in to
the platform's own Cognito user pool (`make token`'s code path)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.platform_run.conftest import ROOT, RunningPlatform
from tests.support import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]


async def tokens(platform: RunningPlatform, *people: tuple[str, str]) -> dict[str, str]:
    """user id (the token's sub) → a pool token, for each (username, group)."""
    found = {}
    for username, group in people:
        token = await platform.token(username, group)
        found[jwt.decode(token, options={"verify_signature": False})["sub"]] = token
    return found


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def listed(body: Any, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = body if isinstance(body, list) else body[key]
    return items


async def test_one_gateway_serves_every_service(platform: RunningPlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.url, timeout=20) as http:
        ready = (await http.get("/readyz")).json()
        components = {name.split(".")[0] for name in ready["checks"]}
        assert components == {"scheduler", "rooms", "chat", "notifier"}
        transports = {
            c["detail"].get("transport") for n, c in ready["checks"].items() if n.endswith(".bus")
        }
        assert transports == {platform.transport}
        document = (await http.get("/openapi.json")).json()
        assert document["info"]["title"] == "Belfry"
        prefixes = {path.split("/")[1] for path in document["paths"]}
        assert {"schedule", "rooms", "chat", "notifications"} <= prefixes
        unauthenticated = await http.get("/rooms")
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"]["code"] in ("unauthorized", "invalid_token")


PEOPLE = (("ada", "admin"), ("ann", "customer"), ("carl", "customer"), ("mia", "manager"))


async def test_a_room_join_and_a_chat_mention(platform: RunningPlatform) -> None:
    run = platform.env["BELFRY_TABLE_PREFIX"]
    people = [(f"{name}-{run}", group) for name, group in PEOPLE]
    token = await tokens(platform, *people)
    admin, attendee, customer, manager = token
    async with httpx.AsyncClient(base_url=platform.url, timeout=20) as http:
        # Rooms: scheduled 2 s ahead, activated by the scheduler, listed by rooms, joined.
        created = await http.post(
            "/schedule",
            headers=auth(token[admin]),
            json={
                "title": f"Platform run {run}",
                "topic": "one process",
                "start_at": int(time.time()) + 2,
                "duration_minutes": 5,
                "media_region": "eu-central-1",
            },
        )
        assert created.status_code == 201, created.text
        room_id = created.json()["room_id"]

        async def room_listed() -> bool:
            response = await http.get("/rooms", headers=auth(token[attendee]))
            assert response.status_code == 200, response.text
            return any(r["room_id"] == room_id for r in listed(response.json(), "rooms"))

        await wait_until(room_listed, timeout=20, interval=0.2, message="the room on GET /rooms")
        joined = await http.post(f"/rooms/{room_id}/join", headers=auth(token[attendee]))
        assert joined.status_code == 200, joined.text
        meeting = joined.json()["Meeting"]
        assert meeting["MeetingId"]
        assert joined.json()["Attendee"]["ExternalUserId"]

        # Chat: assign, post with a mention, see it in the manager's mention inbox.
        for who in (customer, manager):  # chat learns each person's role from their token
            assert (await http.get("/chat/channels", headers=auth(token[who]))).status_code == 200
        assigned = await http.put(
            f"/chat/customers/{customer}/manager",
            headers=auth(token[admin]),
            json={"manager_id": manager},
        )
        assert assigned.status_code in (200, 201), assigned.text
        channels = listed(
            (await http.get("/chat/channels", headers=auth(token[customer]))).json(), "channels"
        )
        assert len(channels) == 1, channels
        posted = await http.post(
            f"/chat/channels/{channels[0]['channel_id']}/messages",
            headers=auth(token[customer]),
            json={"content": f"hello @{manager}", "mentions": [manager]},
        )
        assert posted.status_code == 201, posted.text
        message_id = posted.json()["message_id"]

        async def mentioned() -> bool:
            response = await http.get("/notifications/mentions", headers=auth(token[manager]))
            assert response.status_code == 200, response.text
            body = response.json()
            return any(m["message_id"] == message_id for m in listed(body, "mentions"))

        await wait_until(mentioned, timeout=15, interval=0.2, message="the mention in the inbox")


async def test_the_demo_plays_both_stories(platform: RunningPlatform) -> None:
    """On free ports, told nothing but the banner's `BELFRY_URL=... make demo`: it finds
    the platform's Chime SDK emulator by asking the platform (`GET /platform/info`)."""
    env = {
        k: v
        for k, v in platform.env.items()
        if not k.startswith("BELFRY_PLATFORM_LOCAL_") and k not in ("BELFRY_PORT", "PORT")
    }
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.platform.demo",
        "--lead-seconds",
        "2",
        cwd=ROOT,
        env={**env, "BELFRY_URL": platform.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(demo.communicate(), timeout=90)
    text = output.decode(errors="replace")
    assert demo.returncode == 0, f"{text}\n--- platform ---\n{platform.tail()}"
    assert "[21/21]" in text, text
    assert "(re-created)" in text, "the demo ended the meeting through the embedded emulator"
    assert "skipped" not in text, text
    assert f"Chime SDK emulator {platform.chime_url}" in text, text
    assert "Both stories played out" in text


async def test_sigterm_stops_it_cleanly(platform: RunningPlatform) -> None:
    """With a WebSocket client connected, as after a browser tab was left open."""
    token = await platform.token("watcher", "manager")
    url = platform.url.replace("http", "ws", 1) + "/notifications/ws"
    async with connect(url, open_timeout=10) as websocket:
        await websocket.send(json.dumps({"type": "auth", "token": token}))
        # The first frame: the session is authenticated and registered.
        first = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        assert "type" in first, first
        code, seconds = await asyncio.to_thread(platform.terminate, 20)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(websocket.recv(), 5)
    logs = platform.logs()
    assert code == 0, f"exit code {code}:\n{platform.tail()}"
    assert seconds < 15, f"the stop took {seconds:.1f} s"
    # In order: the gateway stops, the services drain and flush, then the stand-ins stop.
    order = ["platform.stopping", "runtime.stopped", "platform.chime_stopped", "platform.stopped"]
    positions = [logs.find(f'"{event}"') for event in order]
    assert all(p >= 0 for p in positions), dict(zip(order, positions, strict=True))
    assert positions == sorted(positions), dict(zip(order, positions, strict=True))
    assert '"level": "error"' not in logs, platform.tail()
