"""One harness over both transports, so the contract tests run unchanged on each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest

from shared.bus import EventBus, create_bus
from shared.bus.amqp import AmqpBus
from shared.bus.memory import MemoryBroker
from shared.settings import BelfrySettings


class Harness:
    def __init__(self, transport: str, settings: BelfrySettings) -> None:
        self.transport = transport
        self.settings = settings
        self.broker = MemoryBroker()
        self.buses: list[EventBus] = []

    def bus(self, service: str = "test", **overrides: Any) -> EventBus:
        settings = self.settings.model_copy(update=overrides)
        bus = create_bus(settings, service, memory_broker=self.broker)
        self.buses.append(bus)
        return bus

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Bytes on the wire that no Belfry producer would send (poison)."""
        if self.transport == "memory":
            assert self.broker.route(routing_key, body) > 0
            return
        connection = await aio_pika.connect(self.settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(self.settings.exchange)
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key,
            )

    async def close(self) -> None:
        for bus in self.buses:
            if isinstance(bus, AmqpBus) and bus.health().detail.get("publisher") == "connected":
                await bus.stop_consuming(drain_timeout=2)
                await bus.delete_topology(exchanges=True)
            await bus.stop(drain_timeout=2)


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.amqp)])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def harness(
    transport: str, request: pytest.FixtureRequest, make_settings: Callable[..., BelfrySettings]
) -> AsyncIterator[Harness]:
    url = request.getfixturevalue("amqp_url") if transport == "amqp" else "memory://"
    h = Harness(transport, make_settings(amqp_url=url))
    yield h
    await h.close()
