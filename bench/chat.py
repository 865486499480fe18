"""Chat notifications: MessagePosted -> WebSocket frame latency, and fan-out.

Three subprocesses, so that clients and servers do not share a GIL: moto
server (`emulators.aws`), the Chime emulator and the notifier
(`python -m services.notifier`) over real RabbitMQ (AMQP_URL, default the
local broker). The bench process plays chat: it publishes MessagePosted on
the bus exactly as chat does after a post (chat's own HTTP + Chime
SendChannelMessage time is not included; rooms/scheduler-style HTTP figures
belong to chat's bench), and holds the WebSocket clients.

Figures:
- `post_to_ws_latency_p50/p99` at 100 and 500 messages/s (open loop, 10 s
  each) to a customer channel whose manager has a WebSocket open: from the
  publish call to the frame arriving, through the durable feed consumer
  (per-user feed rows in DynamoDB) and the session's ordered read.
- `bus_round_trip_p50/p99`: the same messages' publish -> consume time on a
  plain probe queue in the bench process (the floor the bus itself sets).
- `fanout_last_frame`: one message to a channel with 200 members, each with a
  WebSocket open: publish -> the last of the 200 frames. Members are seeded
  into the notifier's membership view directly (200 ChannelJoined events
  would first write ~20,000 join frames into the members' feeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiobotocore.session import get_session
from websockets.asyncio.client import ClientConnection, connect

from bench.processes import chime_emulator, drop_topology, free_port, moto, running, service_env
from bench.report import Report
from services.notifier.settings import NotifierSettings
from shared.auth import mint_local_token
from shared.bus import Subscription
from shared.bus.amqp import AmqpBus
from shared.events import ChannelJoined, Envelope, MessagePosted, utcnow

BENCH = "chat"
RATES = tuple(int(r) for r in os.environ.get("BENCH_CHAT_RATES", "100,500").split(",") if r)
SECONDS = 10
FANOUT_CLIENTS = 200
NOTIFIER_LOG = os.environ.get("BENCH_NOTIFIER_LOG", "/tmp/belfry-bench-notifier.log")  # noqa: S108
APP = "arn:aws:chime:us-east-1:123456789012:app-instance/bench"


@contextlib.contextmanager
def _stack(amqp_url: str, prefix: str) -> Iterator[tuple[str, str]]:
    """moto, the emulator and the notifier; yields (notifier URL, moto URL)."""
    port = free_port()
    with moto() as (moto_url, _), chime_emulator() as (chime, _):
        env = {**service_env(amqp_url, prefix, moto_url, chime), "BELFRY_PORT": str(port)}
        with running(["services.notifier"], f"http://127.0.0.1:{port}/readyz", env, NOTIFIER_LOG):
            yield f"http://127.0.0.1:{port}", moto_url


class Clients:
    """WebSocket clients of the notifier; every message.posted frame's latency
    is measured against the send time carried in its content."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.arrivals: dict[str, list[float]] = {}
        self._sockets: list[ClientConnection] = []
        self._readers: list[asyncio.Task[None]] = []

    async def open(self, base: str, settings: NotifierSettings, user: str) -> None:
        token = mint_local_token(settings, user, ["manager"])
        url = base.replace("http://", "ws://") + f"/notifications/ws?token={token}"
        ws = await connect(url, max_queue=None, open_timeout=30)
        first = json.loads(await ws.recv())
        assert first["type"] == "session.ready", first
        self._sockets.append(ws)
        self._readers.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for text in ws:
                now = time.time()
                frame = json.loads(text)
                if frame["type"] != "message.posted":
                    continue
                content = frame["data"]["content"]
                tag, _, sent = content.partition("@")
                self.arrivals.setdefault(tag, []).append(now)
                if tag.startswith("lat"):
                    self.latencies.append(now - float(sent))

    async def close(self) -> None:
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def _message(channel: str, customer: str, content: str) -> Envelope:
    return Envelope.new(
        MessagePosted(
            message_id=uuid.uuid4().hex,
            channel_id=channel,
            channel_arn=f"{APP}/channel/{channel}",
            sender_id=customer,
            content=content,
            posted_at=utcnow(),
            channel_kind="customer",
            customer_id=customer,
        ),
        producer="chat",
    )


async def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@contextlib.asynccontextmanager
async def _publisher(url: str, prefix: str, probe: list[float]) -> AsyncIterator[AmqpBus]:
    options: dict[str, Any] = {
        "url": url,
        "exchange": f"{prefix}.events",
        "dead_letter_exchange": f"{prefix}.dlx",
        "queue_prefix": f"{prefix}.",
    }

    async def on_probe(envelope: Envelope) -> None:
        content = getattr(envelope.data, "content", "")
        tag, _, sent = content.partition("@")
        if tag.startswith("lat"):
            probe.append(time.time() - float(sent))

    bus = AmqpBus("bench-chat", **options)
    bus.subscribe(Subscription("bench.probe", ("chat.message_posted",), on_probe))
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop_consuming(5)
        await drop_topology(bus, prefix)
        await bus.close()


async def _latency_round(
    bus: AmqpBus, clients: Clients, probe: list[float], rate: int
) -> tuple[list[float], list[float], float]:
    clients.latencies.clear()
    probe.clear()
    total = rate * SECONDS
    began = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    for i in range(total):
        due = began + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        envelope = _message("customer-bench", "c-bench", f"lat{rate}-{i}@{time.time():.6f}")
        task = asyncio.create_task(bus.publish(envelope))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    await _wait(lambda: len(clients.latencies) >= total and len(probe) >= total, 120)
    span = time.monotonic() - began
    return list(clients.latencies), list(probe), round(len(clients.latencies) / span, 1)


async def _seed_members(moto: str, prefix: str, channel: str, users: list[str]) -> None:
    table = f"{prefix}-notifier-members"
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - the local stand-in accepts any key
    ) as dynamodb:
        for start in range(0, len(users), 25):
            requests: list[Any] = [
                {
                    "PutRequest": {
                        "Item": {
                            "channel_id": {"S": channel},
                            "user_id": {"S": user},
                            "reason": {"S": "manual"},
                        }
                    }
                }
                for user in users[start : start + 25]
            ]
            await dynamodb.batch_write_item(RequestItems={table: requests})


async def run(report: Report) -> None:
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = f"benchchat{uuid.uuid4().hex[:6]}"
    settings = NotifierSettings()
    probe: list[float] = []
    # the notifier stops before the publisher deletes the topology (it would re-declare it)
    async with _publisher(url, prefix, probe) as bus:
        with _stack(url, prefix) as (base, moto):
            clients = Clients()
            try:
                for user in ("c-bench", "m-bench"):
                    await bus.publish(
                        Envelope.new(
                            ChannelJoined(
                                channel_id="customer-bench",
                                channel_arn=f"{APP}/channel/customer-bench",
                                user_id=user,
                                reason="assignment",
                            ),
                            producer="chat",
                        )
                    )
                await clients.open(base, settings, "m-bench")
                # warm-up: connections, table caches, the feed heads
                await _latency_round(bus, clients, probe, 20)
                for rate in RATES:
                    frames, bus_trips, delivered = await _latency_round(bus, clients, probe, rate)
                    total = rate * SECONDS
                    extra = {"rate": rate, "messages": total, "driven_by": "bus (chat's event)"}
                    report.emit(BENCH, "frames_delivered_per_s", delivered, "msg/s", **extra)
                    if len(frames) < total:
                        report.emit(
                            BENCH, "post_to_ws_missing", total - len(frames), "frames", **extra
                        )
                    if frames:
                        report.latency(BENCH, "post_to_ws_latency", frames, **extra)
                    if bus_trips:
                        report.latency(BENCH, "bus_round_trip", bus_trips, **extra)
            finally:
                await clients.close()

            fans = Clients()
            try:
                users = [f"m-fan-{i:03d}" for i in range(FANOUT_CLIENTS)]
                await _seed_members(moto, prefix, "customer-fan", users)
                for start in range(0, len(users), 20):
                    await asyncio.gather(
                        *(fans.open(base, settings, u) for u in users[start : start + 20])
                    )
                sent = time.time()
                await bus.publish(_message("customer-fan", "c-fan", "fan@0"))
                complete = await _wait(lambda: len(fans.arrivals.get("fan", [])) >= len(users), 110)
                arrivals = fans.arrivals.get("fan", [])
                report.emit(
                    BENCH,
                    "fanout_last_frame",
                    round((max(arrivals) - sent) * 1000, 1) if arrivals else None,
                    "ms",
                    clients=len(users),
                    delivered=len(arrivals),
                    complete=complete,
                )
                if arrivals:
                    report.emit(
                        BENCH,
                        "fanout_first_frame",
                        round((min(arrivals) - sent) * 1000, 1),
                        "ms",
                        clients=len(users),
                    )
            finally:
                await fans.close()
