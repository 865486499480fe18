"""Chat end to end: POST /chat/channels/{id}/messages -> Chime (the emulator) ->
chat's outbox -> RabbitMQ -> the notifier's feed -> a WebSocket frame.

Subprocesses, so that nothing shares a GIL with the load: moto server, the
Chime emulator, chat and the notifier (each under `bench.counted`, which
counts their DynamoDB calls) over the local RabbitMQ (AMQP_URL). The bench
process posts with aiohttp on a fixed schedule (open loop: a post is sent at
its time whether or not the earlier ones have been answered) and holds the
WebSockets; every frame's latency is measured against the send time its
content carries. Per-user rate limits and chat's Chime budget are off (one
customer posts 500/s here; see docs/configuration.md).

Figures (`bench: chat_e2e`), at each rate of `BENCH_E2E_RATES` (100,500):
- `posts_per_s`, `frames_per_s` and `frames_per_post` (frames over posts
  answered 201), `backlog_at_half` / `backlog_at_end` (posts answered but not
  yet framed, half-way and at the end of the schedule: a backlog that grows
  is the second larger than the first), `post_to_frame_p50/p99`,
  `http_post_p50/p99` (the 201), `answer_to_frame_p50/p99` (201 -> frame: the
  outbox relay, the bus, the notifier; chat's and moto's queueing is not in it),
  `posts_not_sent` (due while `MAX_OUTSTANDING` posts waited: saturated);
- `dynamodb_calls_per_message` (by process and operation), `cpu_ms_per_message`
  (chat, notifier, moto, emulator);
- `moto_ceiling`: messages/s moto alone reaches for those calls (bench.moto_ceiling).
(The busy manager, one person in 200 channels, is `bench.chat_busy`: driven
from the bus, so that chat's own cost does not hide the notifier's.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from bench import counted
from bench.moto_ceiling import Mix, ceiling
from bench.processes import (
    chime_emulator,
    cpu_seconds,
    free_port,
    moto,
    running,
    scratch_topology,
    service_env,
)
from bench.report import Report
from services.chat.settings import ChatSettings
from shared.auth import mint_local_token

BENCH = "chat_e2e"
RATES = tuple(int(r) for r in os.environ.get("BENCH_E2E_RATES", "100,500").split(",") if r)
SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "8"))
# Posts waiting for their answer at most: a post due while this many are
# outstanding is not sent, and counted (`posts_not_sent`): the service is saturated.
MAX_OUTSTANDING = 256
LOGS = tempfile.gettempdir()


@dataclass
class Stack:
    chat: str
    notifier: str
    moto: str
    pids: dict[str, int]
    counts: dict[str, str]  # process -> its bench.counted file

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def calls(self) -> dict[str, dict[str, dict[str, int]]]:
        return {name: counted.read(path) for name, path in self.counts.items()}


@contextlib.contextmanager
def _stack(amqp_url: str, prefix: str) -> Iterator[Stack]:
    chat_port, notifier_port = free_port(), free_port()
    counts = {n: os.path.join(LOGS, f"{prefix}-{n}-calls.json") for n in ("chat", "notifier")}
    with moto() as (moto_url, moto_pid), chime_emulator() as (chime, chime_pid):
        env = {
            **service_env(amqp_url, prefix, moto_url, chime),
            "BELFRY_RATE_LIMIT_ENABLED": "false",
            "BELFRY_CHIME_RATE_ENABLED": "false",
        }
        with (
            running(
                ["bench.counted", "services.notifier"],
                f"http://127.0.0.1:{notifier_port}/readyz",
                {**env, "BELFRY_PORT": str(notifier_port), "BENCH_COUNTS_FILE": counts["notifier"]},
                os.path.join(LOGS, "belfry-bench-e2e-notifier.log"),
            ) as notifier_pid,
            running(
                ["bench.counted", "services.chat"],
                f"http://127.0.0.1:{chat_port}/readyz",
                {**env, "BELFRY_PORT": str(chat_port), "BENCH_COUNTS_FILE": counts["chat"]},
                os.path.join(LOGS, "belfry-bench-e2e-chat.log"),
            ) as chat_pid,
        ):
            yield Stack(
                f"http://127.0.0.1:{chat_port}",
                f"http://127.0.0.1:{notifier_port}",
                moto_url,
                {"chat": chat_pid, "notifier": notifier_pid, "moto": moto_pid, "chime": chime_pid},
                counts,
            )


@dataclass
class Frames:
    """message.posted frames by tag (`<tag>-<i>@<send time>` in the content)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)  # tag -> arrival
    sockets: list[ClientConnection] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self, base: str, token: str) -> None:
        ws = await connect(
            base.replace("http://", "ws://") + "/notifications/ws", max_queue=None, open_timeout=30
        )
        await ws.send(json.dumps({"type": "auth", "token": token}))
        first = json.loads(await ws.recv())
        assert first["type"] == "session.ready", first
        self.sockets.append(ws)
        self.readers.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for text in ws:
                now = time.time()
                frame = json.loads(text)
                if frame["type"] == "message.posted":
                    tag, _, sent = frame["data"]["content"].partition("@")
                    kind = tag.rsplit("-", 1)[0]
                    self.latencies.setdefault(kind, []).append(now - float(sent))
                    self.arrived[tag] = now

    def count(self, kind: str) -> int:
        return len(self.latencies.get(kind, ()))

    async def close(self) -> None:
        for ws in self.sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


class Chat:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self._http = http
        self._base = base
        self._settings = ChatSettings()

    def token(self, user: str, group: str) -> str:
        return mint_local_token(self._settings, user, [group], ttl_seconds=3600)

    async def call(self, method: str, path: str, token: str, body: Any = None) -> int:
        headers = {"authorization": f"Bearer {token}"}
        async with self._http.request(
            method, self._base + path, json=body, headers=headers
        ) as response:
            await response.read()
            return response.status

    async def assign(self, customer: str, manager: str) -> None:
        for user, group in ((customer, "customer"), (manager, "manager")):
            assert await self.call("GET", "/chat/channels", self.token(user, group)) == 200
        status = await self.call(
            "PUT",
            f"/chat/customers/{customer}/manager",
            self.token("bench-admin", "admin"),
            {"manager_id": manager},
        )
        assert status == 200, status


@dataclass
class Round:
    posted: int = 0
    failed: int = 0
    not_sent: int = 0
    http: list[float] = field(default_factory=list)
    answered: dict[str, float] = field(default_factory=dict)  # tag -> 201 received

    def after_answer(self, frames: Frames) -> list[float]:
        """201 -> frame: chat's outbox relay, RabbitMQ, the notifier, the socket."""
        return [frames.arrived[t] - at for t, at in self.answered.items() if t in frames.arrived]


async def _post_round(
    chat: Chat, frames: Frames, kind: str, *, customers: list[str], rate: int, seconds: float
) -> tuple[Round, float, int, int]:
    """Posts on a fixed schedule; (the round, its span, backlog half-way, at the end)."""
    tokens = {c: chat.token(c, "customer") for c in customers}
    result = Round()
    total = int(rate * seconds)
    pending: set[asyncio.Task[None]] = set()

    async def post(i: int) -> None:
        customer = customers[i % len(customers)]
        started = time.time()
        try:
            status = await chat.call(
                "POST",
                f"/chat/channels/customer-{customer}/messages",
                tokens[customer],
                {"content": f"{kind}-{i}@{started:.6f}"},
            )
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        result.http.append(time.time() - started)
        if status == 201:
            result.answered[f"{kind}-{i}"] = time.time()
            result.posted += 1
        else:
            result.failed += 1

    began = time.monotonic()
    half = 0
    for i in range(total):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if i == total // 2:
            half = result.posted - frames.count(kind)
        if len(pending) >= MAX_OUTSTANDING:
            result.not_sent += 1
            continue
        task = asyncio.create_task(post(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    end = result.posted - frames.count(kind)
    await asyncio.gather(*pending)
    deadline = time.monotonic() + 30
    while frames.count(kind) < result.posted and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return result, time.monotonic() - began, half, end


def _per_message(before: dict[str, Any], after: dict[str, Any], messages: int) -> Mix:
    mix: Mix = {}
    for key, calls in after.get("calls", {}).items():
        service, _, operation = key.partition(":")
        done = calls - before.get("calls", {}).get(key, 0)
        if service != "dynamodb" or done <= 0:
            continue
        items = after["items"].get(key, 0) - before.get("items", {}).get(key, 0)
        mix[operation] = (round(done / messages, 3), round(items / done, 1))
    return mix


async def _rate_round(report: Report, stack: Stack, chat: Chat, frames: Frames, rate: int) -> None:
    kind = f"e2e{rate}"
    cpu, calls = stack.cpu(), stack.calls()
    result, span, half, end = await _post_round(
        chat, frames, kind, customers=["c-e2e"], rate=rate, seconds=SECONDS
    )
    await asyncio.sleep(1.0)  # let the counted processes write their counts (twice a second)
    cpu_after, calls_after = stack.cpu(), stack.calls()
    messages = max(1, result.posted)
    extra: dict[str, Any] = {"rate": rate, "seconds": SECONDS, "load": os.getloadavg()[0]}
    lat = frames.latencies.get(kind, [])
    report.emit(BENCH, "posts_per_s", round(result.posted / span, 1), "msg/s", **extra)
    report.emit(BENCH, "frames_per_s", round(len(lat) / span, 1), "msg/s", **extra)
    report.emit(BENCH, "frames_per_post", round(len(lat) / messages, 3), "", **extra)
    report.emit(BENCH, "post_errors", result.failed, "posts", **extra)
    report.emit(BENCH, "posts_not_sent", result.not_sent, "posts", **extra)
    report.emit(BENCH, "backlog_at_half", half, "messages", **extra)
    report.emit(BENCH, "backlog_at_end", end, "messages", **extra)
    if lat:
        report.latency(BENCH, "post_to_frame", lat, **extra)
    if result.http:
        report.latency(BENCH, "http_post", result.http, **extra)
    if after := result.after_answer(frames):
        report.latency(BENCH, "answer_to_frame", after, **extra)
    cpu_ms = {n: round((cpu_after[n] - cpu[n]) * 1000 / messages, 2) for n in cpu}
    report.emit(BENCH, "cpu_ms_per_message", None, "ms", **extra, by_process=cpu_ms)
    mixes = {n: _per_message(calls[n], calls_after[n], messages) for n in calls}
    per = sum(per for mix in mixes.values() for per, _ in mix.values())
    report.emit(BENCH, "dynamodb_calls_per_message", round(per, 2), "calls", **extra, **mixes)
    if rate == max(RATES):
        both: Mix = {}
        for mix in mixes.values():
            for op, (n, items) in mix.items():
                had, had_items = both.get(op, (0.0, 0.0))
                both[op] = (had + n, (had * had_items + n * items) / max(had + n, 1e-9))
        report.emit(
            BENCH, "moto_ceiling", await ceiling(stack.moto, both), "msg/s", **extra, mix=both
        )


async def run(report: Report) -> None:
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = f"benche2e{uuid.uuid4().hex[:6]}"
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        scratch_topology(url, prefix),
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
    ):
        with _stack(url, prefix) as stack:
            chat = Chat(http, stack.chat)
            await chat.assign("c-e2e", "m-e2e")
            frames = Frames()
            try:
                await frames.open(stack.notifier, chat.token("m-e2e", "manager"))
                await _post_round(chat, frames, "warm", customers=["c-e2e"], rate=50, seconds=2)
                for rate in RATES:
                    await _rate_round(report, stack, chat, frames, rate)
            finally:
                await frames.close()
