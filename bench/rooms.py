"""Joins through the rooms HTTP API beside the raw Chime round trip they wrap.

Three subprocesses, so that clients and servers do not share a GIL: moto
server (`emulators.aws`), the Chime emulator (`emulators.chime`) and the rooms
service (`python -m services.rooms`, uvicorn, **memory bus**: its outbox
events and the attendance consumer stay in its process). RoomActivated is
written to rooms' table with the same transaction item its handler writes,
since a memory bus cannot be reached from outside.

Figures:
- raw CreateAttendee round trip (aiobotocore, same concurrency) and raw moto
  BatchGetItem, the two things a warm join waits for;
- the first join of each of ROOMS rooms (creates the meeting);
- JOINS warm joins by new users over those rooms from CONCURRENCY clients:
  joins/s, p50/p99, p99 against 3x the raw Chime p99, Chime calls per warm
  join (emulator counters; target 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench.processes import chime_emulator, cpu_seconds, free_port, moto, running
from bench.report import Report, percentile
from emulators.chime.control import EmulatorControl
from services.rooms.adapters.rows import ATTENDEES_TABLE, ROOMS_TABLE, lifecycle_item
from services.rooms.domain import ACTIVE, Lifecycle, RoomDetails
from shared.auth import mint_local_token
from shared.dynamo import transact
from shared.settings import BelfrySettings

BENCH = "rooms"
ROOMS = 100
JOINS = 1000
CONCURRENCY = 32
RAW_CALLS = 500
SEQUENTIAL = 100
PREFIX = "bench"


def _aws(service: str, endpoint: str, config: AioConfig | None = None) -> Any:
    """An aiobotocore client context for a local stand-in."""
    return get_session().create_client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=config,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - local stand-ins accept any key
    )


@dataclass(frozen=True)
class Stack:
    moto: str
    chime: str
    rooms: str
    pids: dict[str, int]

    def cpu(self) -> dict[str, float]:
        pids = {**self.pids, "bench_client": os.getpid()}
        return {name: cpu_seconds(pid) for name, pid in pids.items()}


@contextlib.contextmanager
def _stack() -> Iterator[Stack]:
    """moto, the emulator and the rooms service."""
    rooms_port = free_port()
    rooms = f"http://127.0.0.1:{rooms_port}"
    with moto() as (moto_url, moto_pid), chime_emulator() as (chime, chime_pid):
        env = {
            "BELFRY_AMQP_URL": "memory://",
            "BELFRY_AWS_ENDPOINT_URL": moto_url,
            "BELFRY_CHIME_ENDPOINT_URL": chime,
            "BELFRY_TABLE_PREFIX": PREFIX,
            "BELFRY_PORT": str(rooms_port),
            "BELFRY_LOG_LEVEL": "WARNING",
            # The emulator has no limits here: a budget far above Chime's keeps the
            # figure about Belfry's own cost (still one budget write a Chime call).
            "BELFRY_CHIME_RATE_PER_SECOND": "10000",
            "BELFRY_CHIME_RATE_BURST": "10000",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
        with running(["services.rooms"], f"{rooms}/readyz", env) as rooms_pid:
            pids = {"moto": moto_pid, "emulator": chime_pid, "rooms": rooms_pid}
            yield Stack(moto_url, chime, rooms, pids)


async def _drive(
    total: int, call: Callable[[int], Awaitable[None]], concurrency: int = CONCURRENCY
) -> tuple[float, list[float]]:
    """`total` calls, `concurrency` in flight; (elapsed seconds, latencies)."""
    indexes = iter(range(total))
    latencies: list[float] = []

    async def worker() -> None:
        for index in indexes:
            started = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.perf_counter() - started, latencies


async def activate_rooms(moto: str, count: int = ROOMS, prefix: str = PREFIX) -> list[str]:
    """Active rooms written straight into rooms' table, as its handler would."""
    room_ids = [f"bench-{n:03d}-{uuid.uuid4().hex[:6]}" for n in range(count)]
    now = int(time.time())
    async with _aws("dynamodb", moto) as dynamodb:
        table = ROOMS_TABLE.name(prefix, "rooms")
        for room_id in room_ids:
            details = RoomDetails(room_id, "bench", "us-east-1", now - 60, now + 3600)
            change = Lifecycle(room_id, ACTIVE, now * 1000, now + 7200, details)
            await transact(dynamodb, [lifecycle_item(table, change)])
    return room_ids


async def _raw_figures(report: Report, stack: Stack) -> dict[int, float]:
    """Raw CreateAttendee (at CONCURRENCY and one at a time) and raw moto
    BatchGetItem; CreateAttendee p99 in seconds by concurrency."""
    config = AioConfig(
        max_pool_connections=CONCURRENCY, retries={"total_max_attempts": 1, "mode": "standard"}
    )
    p99: dict[int, float] = {}
    async with (
        _aws("chime-sdk-meetings", stack.chime, config) as meetings,
        _aws("dynamodb", stack.moto, config) as dynamodb,
    ):
        meeting_ids = []
        for n in range((RAW_CALLS + SEQUENTIAL) // 200 + 1):
            created = await meetings.create_meeting(
                ClientRequestToken=uuid.uuid4().hex,
                MediaRegion="us-east-1",
                ExternalMeetingId=f"raw-{n}",
            )
            meeting_ids.append(created["Meeting"]["MeetingId"])

        async def create_attendee(index: int) -> None:
            await meetings.create_attendee(
                MeetingId=meeting_ids[index // 200], ExternalUserId=f"raw-user-{index}"
            )

        for concurrency, calls, offset in ((CONCURRENCY, RAW_CALLS, 0), (1, SEQUENTIAL, RAW_CALLS)):
            elapsed, latencies = await _drive(
                calls, functools.partial(_offset, create_attendee, offset), concurrency
            )
            extra = {"concurrency": concurrency}
            report.emit(
                BENCH, "raw_create_attendee_throughput", round(calls / elapsed, 1), "req/s", **extra
            )
            report.latency(BENCH, "raw_create_attendee_latency", latencies, **extra)
            p99[concurrency] = percentile(latencies, 99)

        table = ROOMS_TABLE.name(PREFIX, "rooms")
        attendees = ATTENDEES_TABLE.name(PREFIX, "rooms")

        async def batch_get(index: int) -> None:
            await dynamodb.batch_get_item(
                RequestItems={
                    table: {"Keys": [{"room_id": {"S": f"raw-{index}"}}], "ConsistentRead": True},
                    attendees: {
                        "Keys": [{"room_id": {"S": f"raw-{index}"}, "user_id": {"S": "u"}}],
                        "ConsistentRead": True,
                    },
                }
            )

        for concurrency, calls in ((CONCURRENCY, RAW_CALLS), (1, SEQUENTIAL)):
            elapsed, latencies = await _drive(calls, batch_get, concurrency)
            extra = {"concurrency": concurrency}
            report.emit(
                BENCH, "raw_moto_batch_get_throughput", round(calls / elapsed, 1), "req/s", **extra
            )
            report.latency(BENCH, "raw_moto_batch_get_latency", latencies, **extra)
    return p99


def _offset(call: Callable[[int], Awaitable[None]], offset: int, index: int) -> Awaitable[None]:
    return call(index + offset)


class Joiner:
    """POST /rooms/{id}/join as many users, through one pooled HTTP client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.settings = BelfrySettings()
        self.tokens: dict[str, str] = {}
        self.failures: list[str] = []

    def mint(self, users: list[str]) -> None:
        for user in users:  # outside the timed loops
            self.tokens[user] = mint_local_token(self.settings, user, ["customer"])

    async def join(self, room_id: str, user: str) -> None:
        response = await self.client.post(
            f"/rooms/{room_id}/join", headers={"authorization": f"Bearer {self.tokens[user]}"}
        )
        if response.status_code != 200:
            self.failures.append(f"{response.status_code} {response.text[:200]}")

    async def run(
        self, room_ids: list[str], users: list[str], concurrency: int = CONCURRENCY
    ) -> tuple[float, list[float]]:
        self.mint(users)
        return await _drive(
            len(users),
            lambda i: self.join(room_ids[i % len(room_ids)], users[i]),
            concurrency,
        )


async def _joins(
    report: Report, stack: Stack, room_ids: list[str], raw_p99: dict[int, float]
) -> None:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with (
        httpx.AsyncClient(base_url=stack.rooms, limits=limits, timeout=60) as client,
        EmulatorControl(stack.chime) as control,
    ):
        joiner = Joiner(client)

        # Cold: the first join of each room creates its meeting.
        await control.reset_counters()
        elapsed, latencies = await joiner.run(room_ids, [f"first-{i}" for i in range(ROOMS)])
        created = (await control.counters())["calls"].get("CreateMeeting", 0)
        extra: dict[str, Any] = {"rooms": ROOMS, "concurrency": CONCURRENCY, "bus": "memory"}
        report.emit(BENCH, "first_join_throughput", round(ROOMS / elapsed, 1), "joins/s", **extra)
        report.latency(BENCH, "first_join_latency", latencies, **extra)
        report.emit(BENCH, "meetings_created_by_first_joins", created, "meetings", **extra)

        # Warm: JOINS new users over the rooms, CONCURRENCY at a time.
        await control.reset_counters()
        cpu_before = stack.cpu()
        elapsed, latencies = await joiner.run(room_ids, [f"user-{i}" for i in range(JOINS)])
        cpu_after = stack.cpu()
        calls = (await control.counters())["calls"]
        report.emit(BENCH, "warm_join_throughput", round(JOINS / elapsed, 1), "joins/s", **extra)
        report.latency(BENCH, "warm_join_latency", latencies, **extra)
        report.emit(
            BENCH,
            "warm_join_p99_over_raw_create_attendee_p99",
            round(percentile(latencies, 99) / raw_p99[CONCURRENCY], 2),
            "x",
            target=3,
            **extra,
        )
        report.emit(
            BENCH,
            "chime_calls_per_warm_join",
            round(sum(calls.values()) / JOINS, 3),
            "calls",
            target=1,
            by_operation=calls,
        )
        for name in cpu_before:
            used = (cpu_after[name] - cpu_before[name]) / JOINS * 1000
            report.emit(BENCH, f"cpu_per_warm_join_{name}", round(used, 2), "ms", **extra)

        # Warm, one at a time: the latency a join adds when nothing queues.
        elapsed, latencies = await joiner.run(
            room_ids, [f"solo-{i}" for i in range(SEQUENTIAL)], concurrency=1
        )
        solo = {**extra, "concurrency": 1}
        report.latency(BENCH, "warm_join_latency", latencies, **solo)
        report.emit(
            BENCH,
            "warm_join_p99_over_raw_create_attendee_p99",
            round(percentile(latencies, 99) / raw_p99[1], 2),
            "x",
            target=3,
            **solo,
        )
        report.emit(
            BENCH, "join_failures", len(joiner.failures), "joins", sample=joiner.failures[:3]
        )


async def run(report: Report) -> None:
    with _stack() as stack:
        room_ids = await activate_rooms(stack.moto)
        raw_p99 = await _raw_figures(report, stack)
        await _joins(report, stack, room_ids, raw_p99)


def main() -> None:  # `python -m bench.rooms`
    asyncio.run(run(Report(sys.stdout)))


if __name__ == "__main__":
    main()
