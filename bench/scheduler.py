"""The scheduler's activation loop: lag at a burst, and reads per tick at scale.

1. 1,000 rooms that start in the same second, one scheduler replica over real
   RabbitMQ and moto server: the lag from `start_at` to the RoomActivated a
   consumer in another process (as another service) receives, p50/p99
   (target p99 <= 2 s).
2. The items a tick reads (DynamoDB's ScannedCount of the due-room queries) as
   the schedule grows from 1,000 to 20,000 future rooms, with DUE_PER_LEVEL rooms
   due at each level (target: flat, = the due rooms). Also the tick's wall
   time, which on moto grows with the table, since moto evaluates a Query by
   walking every item: that is the stand-in's cost, not DynamoDB's.

Rooms are seeded straight into the table with BatchWriteItem (as the API
would write them, without their RoomScheduled events) to keep the run short.
Needs RabbitMQ (AMQP_URL, default the local broker); starts its own moto.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

from bench.processes import free_port, moto, running
from bench.report import Report
from services.scheduler.adapters.dynamo import room_item
from services.scheduler.bootstrap import Scheduler, build
from services.scheduler.domain import Phase, Room
from services.scheduler.settings import SchedulerSettings
from shared.aws import AwsClients
from shared.bus import MemoryBroker, Subscription, create_bus
from shared.bus.amqp import AmqpBus
from shared.events import Envelope
from shared.runtime import Component
from shared.topology import durable_bindings

BENCH = "scheduler"
BURSTS = tuple(  # (rooms due in one second, scheduler replicas)
    tuple(int(n) for n in b.split("x"))
    for b in os.environ.get("BENCH_SCHEDULER_BURSTS", "1000x1,1000x2,5000x2").split(",")
)
LEVELS = (1_000, 5_000, 10_000, 20_000)
DUE_PER_LEVEL = 20
RETENTION = 86400
PROBE_QUEUE = "bench.activated"


def _settings(amqp_url: str, moto_url: str) -> SchedulerSettings:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    return SchedulerSettings(
        amqp_url=amqp_url,
        aws_endpoint_url=moto_url,
        exchange=f"{prefix}.events",
        dead_letter_exchange=f"{prefix}.dlx",
        queue_prefix=f"{prefix}.",
        table_prefix=prefix,
        retry_delays_seconds=(0.5,),
        log_level="WARNING",
        log_format="console",
    )


def _room(start_at: int, duration_minutes: int = 60) -> Room:
    return Room(
        room_id=uuid.uuid4().hex,
        title=f"bench {uuid.uuid4().hex[:12]}",
        topic="bench",
        start_at=start_at,
        duration_minutes=duration_minutes,
        media_region="eu-central-1",
        scheduled_by="bench",
        phase=Phase.SCHEDULED,
        revision=1,
        created_at=int(time.time()),
        updated_at=int(time.time()),
    )


async def _seed(aws: AwsClients, table: str, rooms: Sequence[Room]) -> None:
    async def write(chunk: Sequence[Room]) -> None:
        requests = [{"PutRequest": {"Item": room_item(r, RETENTION)}} for r in chunk]
        while requests:
            response = await aws.dynamodb.batch_write_item(RequestItems={table: requests})  # type: ignore[dict-item]
            requests = response.get("UnprocessedItems", {}).get(table, [])  # type: ignore[assignment]

    chunks = [rooms[i : i + 25] for i in range(0, len(rooms), 25)]
    gate = asyncio.Semaphore(8)

    async def gated(chunk: Sequence[Room]) -> None:
        async with gate:
            await write(chunk)

    await asyncio.gather(*(gated(c) for c in chunks))


@contextlib.asynccontextmanager
async def _scheduler(
    settings: SchedulerSettings, broker: MemoryBroker | None = None
) -> AsyncIterator[tuple[AwsClients, Scheduler, Component]]:
    async with AwsClients(settings, services=("dynamodb",)) as aws:
        bus = create_bus(settings, "scheduler", memory_broker=broker)
        component = await build(settings, aws, bus)
        (scheduler,) = [p for p in component.provides if isinstance(p, Scheduler)]
        yield aws, scheduler, component


async def _consume(settings_json: str, count: int) -> None:
    """The consumer side of the lag figure, in its own process (as another
    service would be): prints `ready`, then the arrival times as JSON."""
    settings = SchedulerSettings.model_validate_json(settings_json)
    arrivals: dict[str, float] = {}
    done = asyncio.Event()

    async def on_activated(envelope: Envelope) -> None:
        arrivals[envelope.data.room_id] = time.time()  # type: ignore[attr-defined]
        if len(arrivals) >= count:
            done.set()

    probe = create_bus(settings, "bench-probe")
    probe.subscribe(Subscription(PROBE_QUEUE, ("room.activated",), on_activated))
    await probe.start()
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 120)
    finally:
        await probe.stop(2)
        print(json.dumps(arrivals), flush=True)


async def _drop_topology(settings: SchedulerSettings) -> None:
    bus = create_bus(settings, "bench-cleanup")
    if not isinstance(bus, AmqpBus):
        return
    await bus.start()
    levels = range(1, len(settings.retry_delays_seconds) + 1)
    bus.declared_queues.extend(
        f"{settings.queue_prefix}{name}{suffix}"
        for name in (*durable_bindings(), PROBE_QUEUE)
        for suffix in ("", ".dlq", *(f".retry.{n}" for n in levels))
    )
    try:
        await bus.delete_topology(exchanges=True)
    finally:
        await bus.close()


async def _line(stream: asyncio.StreamReader, wanted: Callable[[str], bool], timeout: float) -> str:
    """The first line of the consumer's output that is `wanted` (logs go there too)."""
    async with asyncio.timeout(timeout):
        while line := await stream.readline():
            text = line.decode().strip()
            if wanted(text):
                return text
    raise RuntimeError("the consumer stopped without answering")


async def activation_lag(
    report: Report, amqp_url: str, moto_url: str, burst: int, replicas: int
) -> None:
    """`burst` rooms that start in the same second, `replicas` scheduler
    processes racing for them; the lag to the RoomActivated that a consumer in
    another process receives."""
    settings = _settings(amqp_url, moto_url)
    consumer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.scheduler",
        "consume",
        settings.model_dump_json(),
        str(burst),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        limit=2**24,  # the arrivals are one JSON line
    )
    assert consumer.stdout is not None
    try:
        with contextlib.ExitStack() as stack:
            for n in range(replicas):
                port = free_port()
                env = settings.environment(port=port, instance_id=f"bench-scheduler-{n}")
                ready = f"http://127.0.0.1:{port}/readyz"
                stack.enter_context(running(["services.scheduler"], ready, env))
            await _line(consumer.stdout, lambda text: text == "ready", 60)
            async with AwsClients(settings, services=("dynamodb",)) as aws:
                # scheduled well ahead, as a class is: in place before the
                # scheduler's lookahead reaches their start
                lookahead = SchedulerSettings().scheduler_lookahead_seconds
                start_at = int(time.time() + 3 + burst / 1000 + lookahead)
                rooms = [_room(start_at) for _ in range(burst)]
                began = time.monotonic()
                await _seed(aws, f"{settings.table_prefix}-scheduler-rooms", rooms)
                seeded = time.monotonic() - began
                if time.time() >= start_at:
                    raise RuntimeError(f"seeding took {seeded:.1f} s, past the start")
                answer = await _line(consumer.stdout, lambda t: t.startswith("{"), 300)
                arrivals = json.loads(answer)
    finally:
        if consumer.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                consumer.terminate()
        await consumer.wait()
        with contextlib.suppress(Exception):
            await _drop_topology(settings)
    missing = [r.room_id for r in rooms if r.room_id not in arrivals]
    if missing:
        raise RuntimeError(f"{len(missing)} rooms were never announced")
    lags = [arrivals[r.room_id] - start_at for r in rooms]
    extra = {
        "rooms": burst,
        "replicas": replicas,
        "tick_s": settings.scheduler_tick_seconds,
        "due_page": settings.scheduler_due_per_tick,
        "target_p99_ms": 1000 if burst <= 1000 else None,
    }
    report.latency(BENCH, "activation_lag", lags, **extra)
    report.emit(BENCH, "activation_lag_max", round(max(lags) * 1000, 1), "ms", **extra)


async def reads_per_tick(report: Report, moto_url: str) -> None:
    # The bus is in memory here: this figure is about DynamoDB reads.
    settings = _settings("memory://", moto_url)
    broker = MemoryBroker()
    async with _scheduler(settings, broker) as (aws, scheduler, _):
        bus = create_bus(settings, "declare", memory_broker=broker)
        await bus.declare(durable_bindings())
        table = scheduler.store.rooms_table
        future = int(time.time()) + 30 * 86400
        seeded = 0
        for level in LEVELS:
            await _seed(aws, table, [_room(future + i) for i in range(level - seeded)])
            seeded = level
            await _seed(aws, table, [_room(int(time.time()) - 1) for _ in range(DUE_PER_LEVEL)])
            began = time.perf_counter()
            stats = await scheduler.activator.tick()
            elapsed = time.perf_counter() - began
            if stats.activated != DUE_PER_LEVEL:
                raise RuntimeError(f"expected {DUE_PER_LEVEL} activations, got {stats.activated}")
            report.emit(
                BENCH,
                "items_read_per_tick",
                stats.items_read,
                "items",
                future_rooms=level,
                due_rooms=DUE_PER_LEVEL,
                target="flat",
            )
            idle = time.perf_counter()
            quiet = await scheduler.activator.tick()
            report.emit(
                BENCH,
                "idle_tick_items_read",
                quiet.items_read,
                "items",
                future_rooms=level,
            )
            report.emit(
                BENCH,
                "tick_ms_on_moto",
                round(elapsed * 1000, 1),
                "ms",
                future_rooms=level,
                idle_tick_ms=round((time.perf_counter() - idle) * 1000, 1),
                note="moto walks the whole table per Query",
            )


async def run(report: Report) -> None:
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    with moto() as (moto_url, _):
        for burst, replicas in BURSTS:
            await activation_lag(report, amqp_url, moto_url, burst, replicas)
        if os.environ.get("BENCH_SCHEDULER_LAG_ONLY") != "1":
            await reads_per_tick(report, moto_url)


if __name__ == "__main__":
    if sys.argv[1:2] == ["consume"]:
        asyncio.run(_consume(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(run(Report(sys.stdout)))
