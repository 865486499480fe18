"""The event bus: one interface (`EventBus`), two transports chosen by URL."""

from __future__ import annotations

import os
import socket

from shared.bus.base import (
    BusError,
    BusHealth,
    DeadLetter,
    EventBus,
    Handler,
    PublishFailed,
    RejectEvent,
    Subscription,
    UnroutableEvent,
)
from shared.bus.memory import MemoryBroker, MemoryBus
from shared.settings import BelfrySettings

__all__ = [
    "BusError",
    "BusHealth",
    "DeadLetter",
    "EventBus",
    "Handler",
    "MemoryBroker",
    "PublishFailed",
    "RejectEvent",
    "Subscription",
    "UnroutableEvent",
    "create_bus",
    "instance_id",
]


def instance_id(settings: BelfrySettings) -> str:
    return settings.instance_id or f"{socket.gethostname()}-{os.getpid()}"


def create_bus(
    settings: BelfrySettings, service: str, *, memory_broker: MemoryBroker | None = None
) -> EventBus:
    """`amqp://` / `amqps://` -> RabbitMQ; `memory://` -> in process (pass one
    `MemoryBroker` to every service that must see the others' events)."""
    url = settings.amqp_url
    if url.startswith(("amqp://", "amqps://")):
        from shared.bus.amqp import AmqpBus

        return AmqpBus(
            service,
            url=url,
            exchange=settings.exchange,
            dead_letter_exchange=settings.dead_letter_exchange,
            queue_prefix=settings.queue_prefix,
            prefetch=settings.prefetch,
            heartbeat=settings.heartbeat_seconds,
            publish_timeout=settings.publish_timeout_seconds,
            retry_delays=settings.retry_delays_seconds,
            delivery_limit=settings.delivery_limit,
            instance_id=instance_id(settings),
        )
    if url.startswith("memory://"):
        return MemoryBus(
            service,
            broker=memory_broker,
            prefetch=settings.prefetch,
            retry_delays=settings.retry_delays_seconds,
            queue_prefix=settings.queue_prefix,
        )
    raise ValueError(f"unsupported bus URL scheme: {url.split('://', 1)[0]!r}")
