"""`amqp://`: the bus over RabbitMQ with aio-pika (production).

Each durable subscription `<q>` has a work queue, delay queues
`<q>.retry.<n>` and a `<q>.dlq` (`shared.bus.rabbit`). A failed handler's
message is re-published (confirmed) to `<q>.retry.<n>` and then acked; after
the last back-off it is published to the DLQ with the error and attempt count
in headers. Undecodable events go to the DLQ at once. A
consumer that dies mid-message leaves it unacked; the broker redelivers it, and
the delivery limit dead-letters a message that keeps killing consumers.
One delay queue per back-off level keeps every message in a queue on the same
TTL, so none waits behind a longer one (TTLs expire only at a queue's head).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from shared import metrics, tracing
from shared.bus import rabbit
from shared.bus.base import (
    BusHealth,
    DeadLetter,
    Dispatcher,
    EventBus,
    Inflight,
    Outcome,
    PublishFailed,
    Subscription,
    UnroutableEvent,
)
from shared.bus.letters import (
    ATTEMPT,
    ERROR,
    REASON,
    SOURCE_QUEUE,
    attempt_of,
    copy_message,
    peek_dead_letters,
    replay_dead_letters,
)
from shared.bus.rabbit import CONNECTION_ERRORS, connect, declare_durable, declare_fanout
from shared.events import Envelope
from shared.logging import get_logger

log = get_logger("belfry.bus.amqp")


@dataclass
class _Consumer:
    subscription: Subscription
    channel: AbstractChannel
    queue: AbstractQueue
    tag: str | None = None


class AmqpBus(EventBus):
    transport = "amqp"

    def __init__(
        self,
        service: str,
        *,
        url: str,
        exchange: str = "belfry.events",
        dead_letter_exchange: str = "belfry.dlx",
        queue_prefix: str = "",
        prefetch: int = 200,
        heartbeat: int = 30,
        publish_timeout: float = 10.0,
        retry_delays: Sequence[float] = (1.0, 5.0, 30.0),
        delivery_limit: int = 20,
        instance_id: str | None = None,
        fanout_expires_ms: int = 300_000,
        connect_timeout: float = 30.0,
    ) -> None:
        super().__init__(service)
        self._url = url
        self._exchange_name = exchange
        self._dlx_name = dead_letter_exchange
        self._prefix = queue_prefix
        self._prefetch = prefetch
        self._heartbeat = heartbeat
        self._publish_timeout = publish_timeout
        self._retry_delays = tuple(retry_delays)
        self._delivery_limit = delivery_limit
        self._instance = instance_id or f"{socket.gethostname()}-{id(self):x}"
        self._fanout_expires_ms = fanout_expires_ms
        self._connect_timeout = connect_timeout
        self._dispatcher = Dispatcher(service, self._retry_delays, transport=self.transport)
        self._inflight = Inflight()
        self._publisher: AbstractRobustConnection | None = None
        self._subscriber: AbstractRobustConnection | None = None
        self._pub_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[_Consumer] = []
        self.declared_queues: list[str] = []
        self._handling: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------

    async def _connect(self, role: str) -> AbstractRobustConnection:
        name = f"{self.service}/{self._instance}/{role}"
        return await connect(
            self._url, name=name, heartbeat=self._heartbeat, timeout=self._connect_timeout
        )

    async def start(self) -> None:
        self._publisher = await self._connect("publish")
        self._pub_channel = await self._publisher.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._pub_channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await self._pub_channel.declare_exchange(
            self._dlx_name, aio_pika.ExchangeType.DIRECT, durable=True
        )
        if not self._subscriptions:
            return
        self._subscriber = await self._connect("consume")
        for sub in self._subscriptions:
            channel = await self._subscriber.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            if sub.fanout:
                queue = await self._declare_fanout(channel, sub)
            else:
                queue = await self._declare_durable(channel, sub.queue, sub.routing_keys)
            consumer = _Consumer(sub, channel, queue)
            consumer.tag = await queue.consume(partial(self._on_message, consumer))
            self._consumers.append(consumer)
            log.info("bus.consuming", queue=queue.name, routing_keys=list(sub.routing_keys))

    async def declare(self, queues: Mapping[str, Sequence[str]]) -> None:
        if self._pub_channel is None:
            raise RuntimeError("declare() after start()")
        for name, keys in queues.items():
            await self._declare_durable(self._pub_channel, name, keys)

    async def stop_consuming(self, drain_timeout: float = 10.0) -> None:
        for consumer in self._consumers:
            if consumer.tag is not None:
                with contextlib.suppress(*CONNECTION_ERRORS, TimeoutError):
                    await consumer.queue.cancel(consumer.tag, timeout=5)
        if not await self._inflight.wait_idle(drain_timeout):
            log.warning("bus.drain_timeout", inflight=self._inflight.count)
        for consumer in self._consumers:
            consumer.tag = None

    async def close(self) -> None:
        for connection in (self._subscriber, self._publisher):
            if connection is not None:
                with contextlib.suppress(*CONNECTION_ERRORS, TimeoutError):
                    await connection.close()
        self._consumers.clear()
        self._subscriber = self._publisher = None
        self._pub_channel = self._exchange = None

    def health(self) -> BusHealth:
        publisher_ok = (
            self._publisher is not None
            and not self._publisher.is_closed
            and self._pub_channel is not None
            and not self._pub_channel.is_closed
        )
        detached = [c.queue.name for c in self._consumers if c.channel.is_closed or c.tag is None]
        expected = len(self._subscriptions)
        ok = publisher_ok and not detached and len(self._consumers) == expected
        return BusHealth(
            ok,
            self.transport,
            {
                "publisher": "connected" if publisher_ok else "down",
                "consumers": len(self._consumers) - len(detached),
                "expected_consumers": expected,
                "detached": detached,
            },
        )

    # --- topology --------------------------------------------------------------

    async def _declare_durable(
        self, channel: AbstractChannel, name: str, routing_keys: Sequence[str]
    ) -> AbstractQueue:
        full = self._prefix + name
        queue, names = await declare_durable(
            channel,
            full,
            routing_keys,
            exchange=self._exchange_name,
            dead_letter_exchange=self._dlx_name,
            retry_levels=len(self._retry_delays),
            delivery_limit=self._delivery_limit,
        )
        self.declared_queues += names
        return queue

    async def _declare_fanout(self, channel: AbstractChannel, sub: Subscription) -> AbstractQueue:
        name = f"{self._prefix}{sub.queue}.{self._instance}"
        self.declared_queues.append(name)
        return await declare_fanout(
            channel, name, sub.routing_keys, self._exchange_name, self._fanout_expires_ms
        )

    async def delete_topology(self, *, exchanges: bool = False) -> None:
        """Delete every queue this bus declared (and its exchanges): test
        isolation and tear-down of a throw-away environment."""
        async with self._temporary_channel() as channel:
            for name in dict.fromkeys(self.declared_queues):
                await channel.queue_delete(name)
            if exchanges:
                await channel.exchange_delete(self._exchange_name)
                await channel.exchange_delete(self._dlx_name)
        self.declared_queues.clear()

    # --- publishing ------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        if self._exchange is None:
            raise PublishFailed("the bus is not started")
        with tracing.publishing(
            envelope, transport=self.transport, service=self.service, exchange=self._exchange_name
        ) as trace_headers:  # `traceparent`/`tracestate` when tracing is on
            message = aio_pika.Message(
                body=envelope.encode(),
                headers=dict(trace_headers),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=envelope.event_id,
                correlation_id=envelope.correlation_id,
                type=envelope.type,
                timestamp=envelope.occurred_at,
                app_id=envelope.producer,
            )
            await self._confirmed(self._exchange, message, envelope.routing_key, envelope.type)
        metrics.EVENTS_PUBLISHED.labels(self.service, envelope.type).inc()

    async def publish_transient(self, envelope: Envelope, *, ttl_seconds: float = 10.0) -> None:
        """One try within the publish timeout (`rabbit.publish_transient`)."""
        if self._exchange is None:
            raise PublishFailed("the bus is not started")
        await rabbit.publish_transient(self._exchange, envelope, ttl_seconds, self._publish_timeout)

    async def _confirmed(
        self, exchange: AbstractExchange, message: aio_pika.Message, routing_key: str, kind: str
    ) -> None:
        """Publish with mandatory + confirm within the publish timeout, riding out a
        reconnect; a returned message is `UnroutableEvent`, a nack `PublishFailed`.
        A confirm lost with the connection means "unknown", so the event is sent
        again after the reconnect: at least once, and consumers dedupe."""
        try:
            async with asyncio.timeout(self._publish_timeout):
                pause = 0.05
                while True:
                    try:
                        await exchange.publish(message, routing_key, mandatory=True)
                        return
                    except CONNECTION_ERRORS as exc:
                        if self._pub_channel is None:
                            raise PublishFailed("the bus is stopped") from exc
                        log.info("bus.publish_waits_for_connection", error=str(exc))
                        await self._ready(self._pub_channel)
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, 1.0)
        except aiormq.exceptions.PublishError as exc:
            self._publish_failed(kind, "unroutable")
            raise UnroutableEvent(f"no queue is bound to {routing_key!r}") from exc
        except aiormq.exceptions.DeliveryError as exc:
            self._publish_failed(kind, "nack")
            raise PublishFailed(f"the broker refused the event: {exc}") from exc
        except TimeoutError as exc:
            self._publish_failed(kind, "timeout")
            raise PublishFailed(f"no confirm within {self._publish_timeout}s") from exc

    @staticmethod
    async def _ready(channel: AbstractChannel) -> None:
        ready = getattr(channel, "ready", None)
        if ready is not None:
            await ready()
        else:  # pragma: no cover - non-robust channels have no ready()
            await asyncio.sleep(0.1)

    def _publish_failed(self, kind: str, reason: str) -> None:
        metrics.PUBLISH_FAILURES.labels(self.service, kind, reason).inc()

    # --- consuming -------------------------------------------------------------

    async def _on_message(self, consumer: _Consumer, message: AbstractIncomingMessage) -> None:
        # aio-pika cancels a delivery's task when its connection drops; a handler
        # cut off half-way could leave its work half done. Shielded, it finishes;
        # the ack then fails, the broker redelivers, and the inbox absorbs it.
        task = asyncio.create_task(self._handle(consumer, message))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)
        await asyncio.shield(task)

    async def _handle(self, consumer: _Consumer, message: AbstractIncomingMessage) -> None:
        with self._inflight:
            attempt = attempt_of(message.headers)
            outcome = await self._dispatcher.dispatch(
                consumer.subscription,
                message.body,
                attempt,
                redelivered=bool(message.redelivered),
                headers=message.headers,
            )
            try:
                if outcome.action == "retry":
                    await self._send_to_retry(consumer.subscription, message, outcome)
                elif outcome.action == "dead_letter":
                    await self._send_to_dlq(consumer.queue.name, message, outcome)
                await message.ack()
            except Exception as exc:
                # Nothing is lost: unacked, the broker redelivers it (to us or a
                # peer), and its delivery limit stops a message that loops.
                log.warning("bus.settle_failed", queue=consumer.queue.name, error=repr(exc))
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)

    async def _send_to_retry(
        self, sub: Subscription, message: AbstractIncomingMessage, outcome: Outcome
    ) -> None:
        level = min(outcome.attempt, len(self._retry_delays))
        copy = copy_message(
            message,
            {ATTEMPT: outcome.attempt + 1, ERROR: outcome.error},
            expiration=outcome.delay_seconds,
        )
        assert self._pub_channel is not None
        await self._confirmed(
            self._pub_channel.default_exchange,
            copy,
            f"{self._prefix}{sub.queue}.retry.{level}",
            outcome.event_type,
        )

    async def _send_to_dlq(
        self, queue_name: str, message: AbstractIncomingMessage, outcome: Outcome
    ) -> None:
        copy = copy_message(
            message,
            {
                ATTEMPT: outcome.attempt,
                REASON: outcome.reason,
                ERROR: outcome.error,
                SOURCE_QUEUE: queue_name,
                "x-belfry-dead-lettered-at": datetime.now(UTC).isoformat(),
            },
        )
        assert self._pub_channel is not None
        dlx = await self._pub_channel.get_exchange(self._dlx_name, ensure=False)
        await self._confirmed(dlx, copy, queue_name, outcome.event_type)

    # --- dead letters ----------------------------------------------------------

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        async with self._temporary_channel() as channel:
            return await peek_dead_letters(channel, self._prefix + queue, limit)

    async def replay_dead_letters(self, queue: str, limit: int = 1000) -> int:
        full = self._prefix + queue
        assert self._pub_channel is not None
        exchange = self._pub_channel.default_exchange

        async def publish(message: aio_pika.Message) -> None:
            await self._confirmed(exchange, message, full, "replay")

        async with self._temporary_channel() as channel:
            replayed = await replay_dead_letters(channel, full, limit, publish)
        log.info("bus.dead_letters_replayed", queue=full, count=replayed)
        return replayed

    @contextlib.asynccontextmanager
    async def _temporary_channel(self) -> Any:
        if self._publisher is None:
            raise RuntimeError("the bus is not started")
        channel = await self._publisher.channel()
        try:
            yield channel
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await channel.close()
