"""End-to-end throughput of Belfry's bus beside raw aio-pika doing the same.

Both paths: persistent messages, publisher confirms, `mandatory`, a quorum
queue, manual acks, the same prefetch, the same publish window, and an
idempotent handler (an in-memory inbox of seen event ids). Belfry's path adds
what a service gets: envelope validation on both ends, the retry/dead-letter
edge, log context and metrics. The rounds alternate (raw, belfry, raw, ...)
so both see the same machine; the ratio is of the medians.

Then the consumer's RSS before and after 50,000 more events (a leak check).
Needs RabbitMQ (AMQP_URL, default the local broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator

import aio_pika

from bench.report import Report
from shared.bus import Subscription
from shared.bus.amqp import AmqpBus
from shared.events import Envelope, RoomEnded

BENCH = "bus"
EVENTS = 10_000
ROUNDS = 3
WINDOW = 200  # publishes in flight
PREFETCH = 200
RSS_EVENTS = 50_000


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _events(n: int) -> list[Envelope]:
    return [
        Envelope.new(RoomEnded(room_id=f"r{i}", ended_at=i), producer="bench") for i in range(n)
    ]


async def _publish_all(publish, items) -> None:
    for start in range(0, len(items), WINDOW):
        await asyncio.gather(*(publish(x) for x in items[start : start + WINDOW]))


@contextlib.asynccontextmanager
async def _belfry(url: str, prefix: str, handler) -> AsyncIterator[tuple[AmqpBus, AmqpBus]]:
    options: dict = {
        "url": url,
        "exchange": f"{prefix}.events",
        "dead_letter_exchange": f"{prefix}.dlx",
        "queue_prefix": f"{prefix}.",
        "prefetch": PREFETCH,
    }
    consumer = AmqpBus("bench-consumer", **options)
    consumer.subscribe(Subscription("bench.events", ("room.ended",), handler))
    publisher = AmqpBus("bench-publisher", **options)
    await consumer.start()
    await publisher.start()
    try:
        yield publisher, consumer
    finally:
        await consumer.stop_consuming(5)
        await consumer.delete_topology(exchanges=True)
        await consumer.close()
        await publisher.stop()


async def belfry_round(url: str, n: int) -> float:
    seen: set[str] = set()
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        if envelope.event_id in seen:  # the idempotent part
            return
        seen.add(envelope.event_id)
        if len(seen) == n:
            done.set()

    events = _events(n)
    async with _belfry(url, f"bench{uuid.uuid4().hex[:8]}", handler) as (publisher, _):
        began = time.perf_counter()
        await _publish_all(publisher.publish, events)
        await asyncio.wait_for(done.wait(), 300)
        return n / (time.perf_counter() - began)


async def raw_round(url: str, n: int) -> float:
    prefix = f"raw{uuid.uuid4().hex[:8]}"
    seen: set[str] = set()
    done = asyncio.Event()
    bodies = [e.encode() for e in _events(n)]
    publishing = await aio_pika.connect_robust(url)
    consuming = await aio_pika.connect_robust(url)
    async with publishing, consuming:
        pub = await publishing.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await pub.declare_exchange(prefix, aio_pika.ExchangeType.TOPIC, durable=True)
        sub = await consuming.channel()
        await sub.set_qos(prefetch_count=PREFETCH)
        queue = await sub.declare_queue(prefix, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(prefix, "room.ended")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            event_id = json.loads(message.body)["event_id"]
            if event_id not in seen:
                seen.add(event_id)
                if len(seen) == n:
                    done.set()
            await message.ack()

        await queue.consume(on_message)

        async def publish(body: bytes) -> None:
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                "room.ended",
                mandatory=True,
                timeout=10,
            )

        began = time.perf_counter()
        await _publish_all(publish, bodies)
        await asyncio.wait_for(done.wait(), 300)
        rate = n / (time.perf_counter() - began)
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        return rate


async def rss_growth(url: str) -> tuple[float, float]:
    handled = 0
    target = asyncio.Event()
    goal = 0

    async def handler(envelope: Envelope) -> None:
        nonlocal handled
        handled += 1
        if handled >= goal:
            target.set()

    async with _belfry(url, f"rss{uuid.uuid4().hex[:8]}", handler) as (publisher, _):
        for count in (5_000, RSS_EVENTS):  # warm up, then measure
            if count == RSS_EVENTS:
                before = _rss_mib()
            goal, handled = count, 0
            target.clear()
            for start in range(0, count, 5_000):
                await _publish_all(publisher.publish, _events(min(5_000, count - start)))
            await asyncio.wait_for(target.wait(), 600)
        return before, _rss_mib()


async def run(report: Report) -> None:
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    raw: list[float] = []
    ours: list[float] = []
    await raw_round(url, 1000)  # warm-up of both paths
    await belfry_round(url, 1000)
    for _ in range(ROUNDS):
        raw.append(await raw_round(url, EVENTS))
        ours.append(await belfry_round(url, EVENTS))
    raw_rate, our_rate = statistics.median(raw), statistics.median(ours)
    settings = {"events": EVENTS, "rounds": ROUNDS, "window": WINDOW, "prefetch": PREFETCH}
    report.emit(BENCH, "raw_aio_pika_msgs_per_s", round(raw_rate), "msg/s", **settings)
    report.emit(BENCH, "belfry_bus_msgs_per_s", round(our_rate), "msg/s", **settings)
    report.emit(BENCH, "belfry_vs_raw_ratio", round(our_rate / raw_rate, 3), "x", target=">= 0.7")
    before, after = await rss_growth(url)
    report.emit(BENCH, "consumer_rss_before", round(before, 1), "MiB", events=RSS_EVENTS)
    report.emit(BENCH, "consumer_rss_after", round(after, 1), "MiB", events=RSS_EVENTS)
    report.emit(
        BENCH, "consumer_rss_growth", round((after - before) / before * 100, 2), "%", target="< 10"
    )
