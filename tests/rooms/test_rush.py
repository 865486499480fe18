"""A whole class joins at its start time (issue 11), over RabbitMQ, moto server
and the emulator at Chime's default limits (10 requests/s, burst 20 per API):
two rooms processes (separate ports, one account-wide budget in DynamoDB) take
300 concurrent joins into 3 rooms. Joins are coalesced into BatchCreateAttendee
and wait for budget instead of being throttled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.chime.control import EmulatorControl
from services.rooms.settings import RoomsSettings
from shared.auth import mint_local_token
from shared.bus import create_bus
from shared.events import Envelope, RoomActivated
from tests.platform_run.conftest import _INHERITED_OUT
from tests.support import drop_topology, free_port, isolated, wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ROOMS = 3
PER_ROOM = 100


@dataclass
class Replicas:
    urls: list[str]
    settings: RoomsSettings
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def token(self, user: str) -> str:
        return mint_local_token(self.settings, user, ["customer"])

    def tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs)


def _env(settings: RoomsSettings, port: int, instance: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_OUT}
    env.update(settings.environment(port=port, instance_id=instance, log_level="WARNING"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def replicas(
    amqp_url: str, moto_url: str, chime_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    settings = RoomsSettings(
        **isolated(),
        amqp_url=amqp_url,
        aws_endpoint_url=moto_url,
        chime_endpoint_url=chime_url,
        retry_delays_seconds=(0.5,),
    )
    ports = [free_port(), free_port()]
    logs = [tmp_path_factory.mktemp("rush") / f"rooms-{n}.log" for n in range(2)]
    processes = []
    for n, (port, log) in enumerate(zip(ports, logs, strict=True)):
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.rooms"],
                    cwd=ROOT,
                    env=_env(settings, port, f"rush-{n}"),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    running = Replicas([f"http://127.0.0.1:{p}" for p in ports], settings, processes, logs)
    try:
        deadline = time.monotonic() + 60
        for url, process in zip(running.urls, processes, strict=True):
            while True:
                assert process.poll() is None, running.tail()
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, running.tail()
                time.sleep(0.2)
        yield running
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(drop_topology(settings))


@pytest.fixture
async def limited(replicas: Replicas, chime: EmulatorControl) -> AsyncIterator[EmulatorControl]:
    await chime.set_limits(default={"rate": 10, "burst": 20})
    try:
        yield chime
    finally:
        await chime.clear_limits()
        await chime.clear_faults()


async def activate_rooms(replicas: Replicas) -> list[str]:
    bus = create_bus(replicas.settings, "scheduler")
    await bus.start()
    room_ids = [f"class-{uuid.uuid4().hex[:8]}" for _ in range(ROOMS)]
    try:
        now = int(time.time())
        for room_id in room_ids:
            data = RoomActivated(
                room_id=room_id,
                title=room_id,
                topic="rush",
                start_at=now - 1,
                end_at=now + 3600,
                media_region="us-east-1",
            )
            await bus.publish(Envelope.new(data, producer="scheduler"))
    finally:
        await bus.close()

    async def active() -> bool:
        async with httpx.AsyncClient(headers=auth(replicas, "viewer")) as http:
            listed = (await http.get(f"{replicas.urls[0]}/rooms")).json()["rooms"]
        return {r["room_id"] for r in listed} >= set(room_ids)

    await wait_until(active, timeout=20, message="the rooms active")
    return room_ids


def auth(replicas: Replicas, user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {replicas.token(user)}"}


async def rush(replicas: Replicas, room_ids: list[str]) -> list[tuple[str, httpx.Response]]:
    """Every user's join at once, alternating between the two replicas."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def join(n: int, room_id: str) -> tuple[str, httpx.Response]:
            user = f"{room_id}-student-{n}"
            url = replicas.urls[n % 2]
            response = await http.post(f"{url}/rooms/{room_id}/join", headers=auth(replicas, user))
            return user, response

        return await asyncio.gather(
            *(join(n, room_id) for room_id in room_ids for n in range(PER_ROOM))
        )


def one_meeting_per_room(live: list[Any], room_ids: list[str]) -> None:
    per_room = Counter(m["ExternalMeetingId"] for m in live)
    assert {r: per_room[r] for r in room_ids} == dict.fromkeys(room_ids, 1), per_room


async def test_a_class_of_300_joins_at_once_without_a_throttle(
    replicas: Replicas, limited: EmulatorControl
) -> None:
    room_ids = await activate_rooms(replicas)
    answers = await rush(replicas, room_ids)

    statuses = Counter(r.status_code for _, r in answers)
    assert statuses == {200: ROOMS * PER_ROOM}, (statuses, replicas.tail())
    attendees = {r.json()["Attendee"]["AttendeeId"] for _, r in answers}
    assert len(attendees) == ROOMS * PER_ROOM
    for user, response in answers:
        assert response.json()["Attendee"]["ExternalUserId"] == user
    one_meeting_per_room(await limited.live_meetings(), room_ids)
    counters = await limited.counters()
    assert counters["throttled"] == {}, counters["throttled"]
    assert counters["calls"].get("CreateAttendee", 0) == 0
    # coalesced: far fewer Chime calls than joins
    assert counters["calls"]["BatchCreateAttendee"] <= ROOMS * PER_ROOM // 5, counters["calls"]


async def test_with_ten_percent_5xx_every_failure_is_a_503_with_retry_after(
    replicas: Replicas, limited: EmulatorControl
) -> None:
    # seed 21 faults the first BatchCreateAttendee and the second CreateMeeting
    await limited.set_faults(seed=21, default={"share": 0.1, "statuses": [500, 503]})
    room_ids = await activate_rooms(replicas)
    answers = await rush(replicas, room_ids)

    statuses = Counter(r.status_code for _, r in answers)
    assert set(statuses) <= {200, 503}, (statuses, replicas.tail())
    assert statuses[200] > 0
    for _, response in answers:
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["code"] in (
                "meeting_service_unavailable",
                "meeting_starting",
                "chime_busy",
                "room_busy",
            )
    await limited.clear_faults()
    one_meeting_per_room(await limited.live_meetings(), room_ids)
    counters = await limited.counters()
    assert counters["faulted"], counters
    assert counters["throttled"] == {}, counters["throttled"]
