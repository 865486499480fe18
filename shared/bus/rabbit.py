"""RabbitMQ pieces of the bus (`shared.bus.amqp`): a robust connection, and
the queues of one subscription:

    <q>            quorum, delivery limit, dead-letters to belfry.dlx / key <q>,
                   bound to the topic exchange by its routing keys
    <q>.retry.<n>  quorum; per-message TTL; dead-letters to the default
                   exchange with key <q>, i.e. straight back to <q>
    <q>.dlq        quorum, bound to belfry.dlx with key <q>

Dead lettering is at-least-once (`x-dead-letter-strategy` with
`x-overflow=reject-publish`): at-most-once otherwise, as RabbitMQ documents.
A fan-out queue is per replica: named (a robust reconnect declares it again),
classic, not exclusive, expiring once unused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection

from shared import metrics
from shared.bus.base import PublishFailed
from shared.events import Envelope
from shared.logging import get_logger

log = get_logger("belfry.bus.amqp")

CONNECTION_ERRORS = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.AMQPChannelError,
    ConnectionError,
)


class _OursToSay(logging.Filter):
    """While `connect` retries, aiormq's own error line per failed attempt is
    dropped: `bus.connect_retry` says the same, once, as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error when creating transport")


async def connect(
    url: str, *, name: str, heartbeat: int, timeout: float
) -> AbstractRobustConnection:
    """connect_robust, retried with back-off for a bounded time at start-up; a
    cancellation (Ctrl-C during start-up) ends the wait at once."""
    quiet = _OursToSay()
    aiormq_log = logging.getLogger("aiormq.connection")
    aiormq_log.addFilter(quiet)
    try:
        return await _connect(url, name=name, heartbeat=heartbeat, timeout=timeout)
    finally:
        aiormq_log.removeFilter(quiet)


async def _connect(
    url: str, *, name: str, heartbeat: int, timeout: float
) -> AbstractRobustConnection:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.2
    while True:
        try:
            return await aio_pika.connect_robust(
                url,
                heartbeat=heartbeat,
                timeout=max(1.0, min(10.0, deadline - loop.time())),
                client_properties={"connection_name": name},
            )
        except (*CONNECTION_ERRORS, OSError, TimeoutError) as exc:
            if loop.time() + delay > deadline:
                raise PublishFailed(f"cannot connect to the broker: {exc}") from exc
            log.warning("bus.connect_retry", connection=name, error=str(exc), delay_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


_SAFE_DEAD_LETTERING = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


async def declare_durable(
    channel: AbstractChannel,
    name: str,
    routing_keys: Sequence[str],
    *,
    exchange: str,
    dead_letter_exchange: str,
    retry_levels: int,
    delivery_limit: int,
) -> tuple[AbstractQueue, list[str]]:
    """The work queue, its delay queues and its DLQ; returns the work queue and
    every queue name declared."""
    declared = [name, f"{name}.dlq"]
    dlq = await channel.declare_queue(
        f"{name}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dead_letter_exchange, routing_key=name)
    for level in range(1, retry_levels + 1):
        declared.append(f"{name}.retry.{level}")
        await channel.declare_queue(
            f"{name}.retry.{level}",
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": name,
                **_SAFE_DEAD_LETTERING,
            },
        )
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dead_letter_exchange,
            "x-dead-letter-routing-key": name,
            "x-delivery-limit": delivery_limit,
            **_SAFE_DEAD_LETTERING,
        },
    )
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue, declared


async def declare_fanout(
    channel: AbstractChannel,
    name: str,
    routing_keys: Sequence[str],
    exchange: str,
    expires_ms: int,
) -> AbstractQueue:
    queue = await channel.declare_queue(
        name, durable=False, arguments={"x-queue-type": "classic", "x-expires": expires_ms}
    )
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue


async def publish_transient(
    exchange: AbstractExchange, envelope: Envelope, ttl_seconds: float, timeout: float
) -> None:
    """An ephemeral event (the notifier's UserTyping), one try within `timeout`:
    not persistent, not mandatory (no consumer: nobody to tell), gone from a
    queue after `ttl_seconds` (a late one would say nothing true any more).
    `PublishFailed` if it did not go; nothing retries it."""
    message = aio_pika.Message(
        body=envelope.encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        expiration=ttl_seconds,
        message_id=envelope.event_id,
        correlation_id=envelope.correlation_id,
        type=envelope.type,
        timestamp=envelope.occurred_at,
        app_id=envelope.producer,
    )
    try:
        async with asyncio.timeout(timeout):
            await exchange.publish(message, envelope.routing_key, mandatory=False)
    except (*CONNECTION_ERRORS, aiormq.exceptions.DeliveryError, TimeoutError) as exc:
        metrics.PUBLISH_FAILURES.labels(envelope.producer, envelope.type, "transient").inc()
        raise PublishFailed(f"transient event not sent: {exc!r}") from exc
    metrics.EVENTS_PUBLISHED.labels(envelope.producer, envelope.type).inc()
