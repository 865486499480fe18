"""The busy manager: one manager in `CHANNELS` (200) customer channels,
`RATE` (200) messages/s spread over them, frames/s and latency at the
manager's WebSocket.

Every message is an append to the manager's feed (and to its channel's
customer's): the manager's head item is in every transaction, which is what
this measures. The stack is `bench.chat`'s (moto, the Chime emulator and the
notifier as subprocesses over RabbitMQ), driven from the bus as chat's
MessagePosted, so that chat's own HTTP and DynamoDB cost (`bench.chat_e2e`)
does not hide the notifier's.

Figures (`bench: chat_busy`): `frames_per_s`, `publishes_per_s`,
`frames_per_publish`, `missing` (frames never received), `post_to_ws_latency_p50/p99`,
and the same messages' `bus_round_trip_p50/p99` on a probe queue (the floor
the bus itself sets on this machine at that moment).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

from bench.chat import APP, Clients, _publisher, _stack, _wait
from bench.report import Report
from services.notifier.settings import NotifierSettings
from shared.events import ChannelJoined, Envelope, MessagePosted, utcnow

BENCH = "chat_busy"
CHANNELS = int(os.environ.get("BENCH_BUSY_CHANNELS", "200"))
RATE = int(os.environ.get("BENCH_BUSY_RATE", "200"))
SECONDS = 10
MANAGER = "m-busy"


def _customer(i: int) -> str:
    return f"c-busy-{i:03d}"


def _posted(i: int, content: str) -> Envelope:
    channel = f"customer-{_customer(i)}"
    return Envelope.new(
        MessagePosted(
            message_id=uuid.uuid4().hex,
            channel_id=channel,
            channel_arn=f"{APP}/channel/{channel}",
            sender_id=_customer(i),
            content=content,
            posted_at=utcnow(),
            channel_kind="customer",
            customer_id=_customer(i),
        ),
        producer="chat",
    )


async def run(report: Report) -> None:
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = f"benchbusy{uuid.uuid4().hex[:6]}"
    probe: list[float] = []
    async with _publisher(url, prefix, probe) as bus:
        with _stack(url, prefix) as (base, _moto):
            for i in range(CHANNELS):
                channel = f"customer-{_customer(i)}"
                for user in (_customer(i), MANAGER):
                    await bus.publish(
                        Envelope.new(
                            ChannelJoined(
                                channel_id=channel,
                                channel_arn=f"{APP}/channel/{channel}",
                                user_id=user,
                                reason="assignment",
                                channel_kind="customer",
                                customer_id=_customer(i),
                            ),
                            producer="chat",
                        )
                    )
            clients = Clients()
            try:
                await clients.open(base, NotifierSettings(), MANAGER)
                # the joins are in (the last channel's message reaches the manager)
                await bus.publish(_posted(CHANNELS - 1, "ready@0"))
                await _wait(lambda: "ready" in clients.arrivals, 120)
                total = RATE * SECONDS
                clients.latencies.clear()
                probe.clear()
                began = time.monotonic()
                pending: set[asyncio.Task[None]] = set()
                for n in range(total):
                    delay = began + n / RATE - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    envelope = _posted(n % CHANNELS, f"lat-busy-{n}@{time.time():.6f}")
                    task = asyncio.create_task(bus.publish(envelope))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                await asyncio.gather(*pending)
                published = time.monotonic() - began
                await _wait(lambda: len(clients.latencies) >= total, 60)
                span = time.monotonic() - began
                frames = list(clients.latencies)
                extra = {"channels": CHANNELS, "rate": RATE, "load": os.getloadavg()[0]}
                report.emit(BENCH, "publishes_per_s", round(total / published, 1), "msg/s", **extra)
                report.emit(BENCH, "frames_per_s", round(len(frames) / span, 1), "msg/s", **extra)
                report.emit(BENCH, "frames_per_publish", round(len(frames) / total, 3), "", **extra)
                report.emit(BENCH, "missing", total - len(frames), "frames", **extra)
                if frames:
                    report.latency(BENCH, "post_to_ws_latency", frames, **extra)
                if probe:
                    report.latency(BENCH, "bus_round_trip", probe, **extra)
            finally:
                await clients.close()
