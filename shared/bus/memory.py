"""`memory://`: the bus in one process, for the one-process local run and unit tests.

It routes like a topic exchange, buffers events for declared queues that have
no consumer yet, runs up to `prefetch` handlers per queue, retries with the
configured delays and keeps dead letters. It says nothing about acks,
redelivery or broker failures: those are proven against RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared import metrics, tracing
from shared.bus.base import (
    BusHealth,
    DeadLetter,
    Dispatcher,
    EventBus,
    Inflight,
    Subscription,
    UnroutableEvent,
    topic_matches,
)
from shared.events import Envelope


@dataclass
class _Queue:
    name: str
    routing_keys: tuple[str, ...]
    # (body, attempt, headers): the headers carry the trace context, as AMQP's do
    pending: asyncio.Queue[tuple[bytes, int, Mapping[str, Any]]] = field(
        default_factory=asyncio.Queue
    )
    dead: list[DeadLetter] = field(default_factory=list)


class MemoryBroker:
    """The in-process "broker": queues and their bindings. Services that must see
    each other's events (the one-process run) share one broker."""

    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}

    def queue(self, name: str, routing_keys: Sequence[str]) -> _Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = _Queue(name, tuple(routing_keys))
        return queue

    def route(self, routing_key: str, body: bytes, headers: Mapping[str, Any] | None = None) -> int:
        targets = [
            q
            for q in self.queues.values()
            if any(topic_matches(p, routing_key) for p in q.routing_keys)
        ]
        for queue in targets:
            queue.pending.put_nowait((body, 1, dict(headers or {})))
        return len(targets)


class MemoryBus(EventBus):
    transport = "memory"

    def __init__(
        self,
        service: str,
        *,
        broker: MemoryBroker | None = None,
        prefetch: int = 50,
        retry_delays: Sequence[float] = (0.05, 0.2, 1.0),
        queue_prefix: str = "",
    ) -> None:
        super().__init__(service)
        self.broker = broker or MemoryBroker()
        self._dispatcher = Dispatcher(service, retry_delays, transport=self.transport)
        self._prefetch = prefetch
        self._prefix = queue_prefix
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._inflight = Inflight()
        self._started = False
        self._stopping = False

    async def declare(self, queues: Mapping[str, Sequence[str]]) -> None:
        for name, keys in queues.items():
            self.broker.queue(self._prefix + name, keys)

    async def start(self) -> None:
        for sub in self._subscriptions:
            queue = self.broker.queue(self._prefix + sub.queue, sub.routing_keys)
            for _ in range(min(self._prefetch, 64)):
                self._workers.append(asyncio.create_task(self._work(sub, queue)))
        self._started = True

    async def publish(self, envelope: Envelope) -> None:
        with tracing.publishing(
            envelope, transport=self.transport, service=self.service
        ) as headers:
            if not self.broker.route(envelope.routing_key, envelope.encode(), headers):
                metrics.PUBLISH_FAILURES.labels(self.service, envelope.type, "unroutable").inc()
                raise UnroutableEvent(f"no queue is bound to {envelope.routing_key}")
        metrics.EVENTS_PUBLISHED.labels(self.service, envelope.type).inc()

    async def _work(self, sub: Subscription, queue: _Queue) -> None:
        while True:
            body, attempt, headers = await queue.pending.get()
            if self._stopping:  # taken after stop() began: leave it for nobody to lose
                queue.pending.put_nowait((body, attempt, headers))
                return
            with self._inflight:
                outcome = await self._dispatcher.dispatch(sub, body, attempt, headers=headers)
                if outcome.action == "retry":
                    timer = asyncio.get_running_loop().call_later(
                        outcome.delay_seconds, self._requeue, queue, body, attempt + 1, headers
                    )
                    self._timers.add(timer)
                elif outcome.action == "dead_letter":
                    queue.dead.append(
                        DeadLetter(
                            queue.name,
                            body,
                            outcome.reason,
                            outcome.error,
                            attempt,
                            outcome.event_id,
                            headers,
                        )
                    )
                queue.pending.task_done()

    def _requeue(
        self, queue: _Queue, body: bytes, attempt: int, headers: Mapping[str, Any]
    ) -> None:
        now = asyncio.get_running_loop().time()
        self._timers = {t for t in self._timers if t.when() > now}
        queue.pending.put_nowait((body, attempt, headers))

    async def stop_consuming(self, drain_timeout: float = 10.0) -> None:
        self._stopping = True
        await self._inflight.wait_idle(drain_timeout)
        for timer in self._timers:
            timer.cancel()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()

    async def close(self) -> None:
        self._started = self._stopping = False

    def health(self) -> BusHealth:
        ok = self._started and not self._stopping
        return BusHealth(ok, self.transport, {"queues": len(self.broker.queues)})

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        found = self.broker.queues.get(self._prefix + queue)
        return list(found.dead[:limit]) if found else []

    async def replay_dead_letters(self, queue: str, limit: int = 1000) -> int:
        found = self.broker.queues.get(self._prefix + queue)
        if found is None:
            return 0
        replayed, found.dead = found.dead[:limit], found.dead[limit:]
        for letter in replayed:
            found.pending.put_nowait((letter.body, 1, letter.headers))
        return len(replayed)
