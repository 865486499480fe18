"""The 09:00 rush (issue 11): 1,000 joins into 10 rooms fired at once against
two rooms processes (memory bus, one moto server, one account-wide budget),
with the Chime emulator at Chime's default limits (10 requests/s, burst 20
per API). Side by side in one run: joins coalesced into BatchCreateAttendee
(Belfry's path), with each room's joins reaching one replica and spread over
both, and the same with batches of one (the baseline).

Figures per variant: ok / 503 / 500 counts, join latency p50 / p99, wall time,
Chime calls by operation, throttled answers, CPU per join in the rooms
processes. Targets: all 1,000 ok, p99 <= 3 s, 0 throttled, <= 12 attendee
calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp

from bench.processes import chime_emulator, cpu_seconds, free_port, moto, running
from bench.report import Report, percentile
from bench.rooms import activate_rooms
from emulators.chime.control import EmulatorControl
from shared.auth import mint_local_token
from shared.settings import BelfrySettings

BENCH = "rush"
ROOMS = 10
JOINS = 1000
REPLICAS = 2
# (name, batch size, routing): "by_room" sends a room's joins to one replica (an
# ingress hashing on the path, e.g. ingress-nginx `upstream-hash-by`),
# "spread" alternates replicas within each room (round robin).
# The last one is the first without the HTTP edge's rate limiter (one more
# conditional write per join, issue 13): what that costs, side by side.
VARIANTS = (
    ("coalesced", 100, "by_room", True),
    ("coalesced", 100, "spread", True),
    ("one_per_call", 1, "spread", True),
    ("coalesced_no_rate_limit", 100, "by_room", False),
)


@contextlib.contextmanager
def _replicas(
    moto_url: str, chime: str, prefix: str, batch: int, rate_limits: bool
) -> Iterator[list[tuple[str, int]]]:
    with contextlib.ExitStack() as stack:
        replicas = []
        for n in range(REPLICAS):
            port = free_port()
            env = {
                "BELFRY_AMQP_URL": "memory://",
                "BELFRY_AWS_ENDPOINT_URL": moto_url,
                "BELFRY_CHIME_ENDPOINT_URL": chime,
                "BELFRY_TABLE_PREFIX": prefix,
                "BELFRY_PORT": str(port),
                "BELFRY_INSTANCE_ID": f"rush-{n}",
                "BELFRY_LOG_LEVEL": "WARNING",
                "BELFRY_ROOMS_JOIN_BATCH_MAX": str(batch),
                "BELFRY_RATE_LIMIT_ENABLED": str(rate_limits).lower(),
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
            }
            url = f"http://127.0.0.1:{port}"
            pid = stack.enter_context(running(["services.rooms"], f"{url}/readyz", env))
            replicas.append((url, pid))
        yield replicas


async def _rush(
    replicas: list[tuple[str, int]], room_ids: list[str], settings: BelfrySettings, routing: str
) -> tuple[float, list[tuple[int, float, str]]]:
    """Every join at once (aiohttp: httpx's client costs ~10 ms of CPU a request
    here, which would make the client the bottleneck of the figure)."""
    tokens = [mint_local_token(settings, f"student-{n}", ["customer"]) for n in range(JOINS)]
    connector = aiohttp.TCPConnector(limit=JOINS)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def join(n: int) -> tuple[int, float, str]:
            room_id = room_ids[n % len(room_ids)]
            replica = n % REPLICAS if routing == "by_room" else (n // len(room_ids)) % REPLICAS
            url = replicas[replica][0]
            headers = {"authorization": f"Bearer {tokens[n]}"}
            started = time.perf_counter()
            async with http.post(f"{url}/rooms/{room_id}/join", headers=headers) as response:
                body = await response.json()
            latency = time.perf_counter() - started
            code = "" if response.status == 200 else body["error"]["code"]
            return response.status, latency, code

        started = time.perf_counter()
        answers = await asyncio.gather(*(join(n) for n in range(JOINS)))
        return time.perf_counter() - started, answers


async def run(report: Report) -> None:
    settings = BelfrySettings()
    with moto() as (moto_url, _), chime_emulator() as (chime, _):
        async with EmulatorControl(chime) as control:
            for name, batch, routing, rate_limits in VARIANTS:
                prefix = f"rush-{name.replace('_', '-')}-{routing.replace('_', '-')}"
                with _replicas(moto_url, chime, prefix, batch, rate_limits) as replicas:
                    room_ids = await activate_rooms(moto_url, ROOMS, prefix)
                    await control.reset()
                    await control.set_limits(default={"rate": 10, "burst": 20})
                    cpu = [cpu_seconds(pid) for _, pid in replicas]
                    wall, answers = await _rush(replicas, room_ids, settings, routing)
                    cpu_ms = sum(cpu_seconds(pid) for _, pid in replicas) - sum(cpu)
                    counters = await control.counters()
                extra: dict[str, Any] = {
                    "variant": name,
                    "batch_max": batch,
                    "routing": routing,
                    "rate_limits": rate_limits,
                    "joins": JOINS,
                    "rooms": ROOMS,
                    "replicas": REPLICAS,
                }
                statuses = Counter(status for status, _, _ in answers)
                for status in (200, 503, 500):
                    report.emit(
                        BENCH, f"status_{status}", statuses.get(status, 0), "joins", **extra
                    )
                report.emit(
                    BENCH,
                    "error_codes",
                    None,
                    codes=dict(Counter(code for _, _, code in answers if code)),
                    **extra,
                )
                latencies = [latency for _, latency, _ in answers]
                report.emit(
                    BENCH, "join_latency_p50", round(percentile(latencies, 50), 3), "s", **extra
                )
                report.emit(
                    BENCH,
                    "join_latency_p99",
                    round(percentile(latencies, 99), 3),
                    "s",
                    target=3,
                    **extra,
                )
                report.emit(BENCH, "wall_time", round(wall, 2), "s", **extra)
                report.emit(
                    BENCH,
                    "chime_attendee_calls",
                    counters["calls"].get("BatchCreateAttendee", 0)
                    + counters["calls"].get("CreateAttendee", 0),
                    "calls",
                    target=12,
                    by_operation=counters["calls"],
                    **extra,
                )
                report.emit(
                    BENCH,
                    "chime_throttled",
                    sum(counters["throttled"].values()),
                    "answers",
                    target=0,
                    by_operation=counters["throttled"],
                    **extra,
                )
                report.emit(
                    BENCH, "rooms_cpu_per_join", round(cpu_ms * 1000 / JOINS, 2), "ms", **extra
                )


def main() -> None:  # `python -m bench.rush`
    asyncio.run(run(Report(sys.stdout)))


if __name__ == "__main__":
    main()
