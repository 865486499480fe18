"""Throughput and latency of the Chime emulator under concurrent aiobotocore clients.

Starts `python -m emulators.chime` as a subprocess (so the clients and the
server do not share a GIL), then drives CreateAttendee and SendChannelMessage
from CLIENTS aiobotocore clients with CONCURRENCY requests in flight each,
rate limits off. On a small machine the clients (SigV4 signing, parsing)
cost more CPU than the emulator, so the figures include the emulator's own
CPU time per request too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench.processes import chime_emulator, cpu_seconds
from bench.report import Report

BENCH = "emulator"
CLIENTS = 4
CONCURRENCY = 16
REQUESTS = 3000
WARMUP = 100
ATTENDEES_PER_MEETING = 200  # under Chime's capacity of 250


@contextlib.asynccontextmanager
async def _clients(base_url: str) -> AsyncIterator[list[dict[str, Any]]]:
    session = get_session()
    config = AioConfig(
        max_pool_connections=CONCURRENCY, retries={"total_max_attempts": 1, "mode": "standard"}
    )
    settings: dict[str, Any] = {
        "endpoint_url": base_url,
        "config": config,
        "region_name": "us-east-1",
        "aws_access_key_id": "bench",
        "aws_secret_access_key": "bench",
    }
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(CLIENTS):
            clients.append(
                {
                    "identity": await stack.enter_async_context(
                        session.create_client("chime-sdk-identity", **settings)
                    ),
                    "meetings": await stack.enter_async_context(
                        session.create_client("chime-sdk-meetings", **settings)
                    ),
                    "messaging": await stack.enter_async_context(
                        session.create_client("chime-sdk-messaging", **settings)
                    ),
                }
            )
        yield clients


async def _drive(
    clients: list[dict[str, Any]],
    total: int,
    call: Callable[[dict[str, Any], int], Awaitable[Any]],
) -> tuple[float, list[float]]:
    """Run `total` calls, CONCURRENCY at a time per client; (elapsed seconds, latencies)."""
    next_index = iter(range(total))
    latencies: list[float] = []

    async def worker(client: dict[str, Any]) -> None:
        for index in next_index:
            started = time.perf_counter()
            await call(client, index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for client in clients:
            for _ in range(CONCURRENCY):
                group.create_task(worker(client))
    return time.perf_counter() - started, latencies


def _report(
    report: Report,
    name: str,
    elapsed: float,
    latencies: list[float],
    server_cpu: float | None,
) -> None:
    extra = {"clients": CLIENTS, "concurrency": CONCURRENCY, "requests": REQUESTS}
    report.emit(BENCH, f"{name}_throughput", round(REQUESTS / elapsed, 1), "req/s", **extra)
    report.latency(BENCH, f"{name}_latency", latencies, **extra)
    if server_cpu is not None:
        per_request = round(server_cpu / REQUESTS * 1e6, 1)
        report.emit(BENCH, f"{name}_server_cpu_per_request", per_request, "us", **extra)


async def _measure(
    report: Report,
    name: str,
    clients: list[dict[str, Any]],
    server_pid: int,
    call: Callable[[dict[str, Any], int], Awaitable[Any]],
) -> None:
    cpu_before = cpu_seconds(server_pid)
    elapsed, latencies = await _drive(clients, REQUESTS, call)
    cpu_after = cpu_seconds(server_pid)
    server_cpu = cpu_after - cpu_before
    _report(report, name, elapsed, latencies, server_cpu)


async def _bench_create_attendee(
    report: Report, clients: list[dict[str, Any]], server_pid: int
) -> None:
    meetings = clients[0]["meetings"]
    meeting_ids = []
    for number in range((REQUESTS + WARMUP) // ATTENDEES_PER_MEETING + 1):
        created = await meetings.create_meeting(
            ClientRequestToken=uuid.uuid4().hex,
            MediaRegion="us-east-1",
            ExternalMeetingId=f"bench-{number}",
        )
        meeting_ids.append(created["Meeting"]["MeetingId"])

    async def create_attendee(client: dict[str, Any], index: int) -> None:
        await client["meetings"].create_attendee(
            MeetingId=meeting_ids[index // ATTENDEES_PER_MEETING], ExternalUserId=f"user-{index}"
        )

    await _drive(clients, WARMUP, lambda c, i: create_attendee(c, REQUESTS + i))
    await _measure(report, "create_attendee", clients, server_pid, create_attendee)


async def _bench_send_channel_message(
    report: Report, clients: list[dict[str, Any]], server_pid: int
) -> None:
    identity, messaging = clients[0]["identity"], clients[0]["messaging"]
    app_instance = (await identity.create_app_instance(Name="bench"))["AppInstanceArn"]
    users = [
        (
            await identity.create_app_instance_user(
                AppInstanceArn=app_instance, AppInstanceUserId=name, Name=name
            )
        )["AppInstanceUserArn"]
        for name in ("sender", "reader")
    ]
    channel = (
        await messaging.create_channel(
            AppInstanceArn=app_instance, Name="bench", MemberArns=[users[1]], ChimeBearer=users[0]
        )
    )["ChannelArn"]

    async def send(client: dict[str, Any], index: int) -> None:
        await client["messaging"].send_channel_message(
            ChannelArn=channel,
            Content=f"message {index}",
            Metadata='{"mentions": []}',
            Type="STANDARD",
            Persistence="PERSISTENT",
            ChimeBearer=users[0],
        )

    await _drive(clients, WARMUP, send)
    await _measure(report, "send_channel_message", clients, server_pid, send)


async def run(report: Report) -> None:
    with chime_emulator() as (base_url, server_pid):
        async with _clients(base_url) as clients:
            await _bench_create_attendee(report, clients, server_pid)
            await _bench_send_channel_message(report, clients, server_pid)
