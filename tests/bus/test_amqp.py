"""What only a real broker can show: outages, delivery limits, persistence."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq.exceptions
import pytest

from shared.aws import AwsClients
from shared.bus import PublishFailed, Subscription
from shared.bus.amqp import AmqpBus
from shared.dynamo import TableSpec, ensure_tables, to_item
from shared.events import Envelope, RoomEnded
from shared.inbox import INBOX_TABLE, Inbox
from shared.settings import BelfrySettings
from shared.store import Store
from tests.support import TcpProxy, wait_until

pytestmark = pytest.mark.amqp


def ended(i: int) -> Envelope:
    return Envelope.new(RoomEnded(room_id=f"r{i}", ended_at=i), producer="scheduler")


def via(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(amqp_url)
    p = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672).start()
    yield p
    await p.stop()


@pytest.fixture
async def buses(
    amqp_url: str, make_settings: Callable[..., BelfrySettings]
) -> AsyncIterator[Callable[..., AmqpBus]]:
    settings = make_settings(amqp_url=amqp_url)
    made: list[AmqpBus] = []

    def factory(service: str = "test", url: str | None = None, **kw: object) -> AmqpBus:
        options: dict = {
            "url": url or amqp_url,
            "exchange": settings.exchange,
            "dead_letter_exchange": settings.dead_letter_exchange,
            "queue_prefix": settings.queue_prefix,
            "retry_delays": settings.retry_delays_seconds,
            "publish_timeout": settings.publish_timeout_seconds,
            **kw,
        }
        bus = AmqpBus(service, **options)
        made.append(bus)
        return bus

    yield factory
    cleaner = factory("cleanup")
    await cleaner.start()
    for bus in made[:-1]:
        cleaner.declared_queues += bus.declared_queues
        await bus.stop(drain_timeout=2)
    await cleaner.delete_topology(exchanges=True)
    await cleaner.stop()


async def test_every_event_survives_the_broker_dropping_all_connections(
    proxy: TcpProxy, amqp_url: str, buses, aws: AwsClients, test_id: str
) -> None:
    """2,000 events; halfway through, every connection (publisher and consumer)
    is cut. The consumer reconnects by itself, nothing is lost, and the
    redeliveries the outage causes are absorbed by the DynamoDB inbox."""
    total = 2000
    tables = await ensure_tables(
        aws.dynamodb, test_id, "rooms", [INBOX_TABLE, TableSpec("effects", hash_key="pk")]
    )
    store = Store(aws.dynamodb, inbox=Inbox(aws.dynamodb, tables["inbox"]))
    deliveries: Counter[str] = Counter()
    effects: Counter[str] = Counter()

    async def handler(env: Envelope) -> None:
        deliveries[env.event_id] += 1
        effect = {"Put": {"TableName": tables["effects"], "Item": to_item({"pk": env.event_id})}}
        if await store.commit([effect], once=("rooms.ended", env.event_id)):
            effects[env.event_id] += 1

    url = via(proxy, amqp_url)
    consumer = buses("rooms", url=url, heartbeat=5, prefetch=100)
    consumer.subscribe(Subscription("rooms.ended", ("room.ended",), handler))
    await consumer.start()
    publisher = buses("scheduler", url=url, heartbeat=5, publish_timeout=30)
    await publisher.start()

    events = [ended(i) for i in range(total)]
    dropped = False
    for start in range(0, total, 50):
        await asyncio.gather(*(publisher.publish(e) for e in events[start : start + 50]))
        if not dropped and start >= total // 2:
            assert proxy.drop_all() >= 2  # publisher and consumer connections
            dropped = True
            # The socket's close reaches a client that is busy on a loaded machine late:
            # as long as the heartbeat (5 s) allows, twice over.
            await wait_until(
                lambda: not consumer.health().ok, timeout=30, message="the consumer to notice"
            )

    await wait_until(lambda: consumer.health().ok, timeout=30, message="the consumer to come back")
    await wait_until(
        lambda: len(effects) == total,
        timeout=120,
        message="every event handled",
        describe=lambda: f"{len(effects)} handled, {sum(deliveries.values())} deliveries",
    )
    assert set(effects) == {e.event_id for e in events}
    assert max(effects.values()) == 1  # side effects exactly once
    assert await _count(aws, tables["effects"]) == total
    duplicates = sum(deliveries.values()) - total
    print(f"deliveries={sum(deliveries.values())} duplicates={duplicates}")
    assert proxy.accepted >= 4  # both connections were made again


async def _count(aws: AwsClients, table: str) -> int:
    total = 0
    async for page in aws.dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT"):
        total += page["Count"]
    return total


async def test_publish_fails_within_its_timeout_when_the_broker_is_gone(
    proxy: TcpProxy, amqp_url: str, buses
) -> None:
    bus = buses("scheduler", url=via(proxy, amqp_url), publish_timeout=1.5)
    await bus.start()
    proxy.pause()
    proxy.drop_all()
    began = time.monotonic()
    with pytest.raises(PublishFailed):
        await bus.publish(ended(1))
    assert time.monotonic() - began < 5
    proxy.resume()
    await wait_until(lambda: bus.health().ok, timeout=20, message="the publisher to reconnect")


async def test_a_message_that_keeps_killing_consumers_hits_the_delivery_limit(
    amqp_url: str, buses
) -> None:
    bus = buses("rooms", delivery_limit=2)
    await bus.start()
    await bus.declare({"rooms.crashy": ("room.ended",)})
    sent = ended(7)
    await bus.publish(sent)
    queue_name = f"{bus._prefix}rooms.crashy"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        # A consumer that dies before acking: the broker hands the message out
        # again each time, until the delivery limit dead-letters it.
        for _ in range(10):
            message = await queue.get(no_ack=False, fail=False, timeout=5)
            if message is None:
                break
            await message.reject(requeue=True)
    letters = await bus.dead_letters("rooms.crashy")
    assert [letter.event_id for letter in letters] == [sent.event_id]
    assert letters[0].reason == "delivery_limit"


async def test_events_are_persistent_and_queues_are_quorum(amqp_url: str, buses) -> None:
    bus = buses("rooms")
    await bus.start()
    await bus.declare({"rooms.parked": ("room.ended",)})
    await bus.publish(ended(1))
    queue_name = f"{bus._prefix}rooms.parked"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        message = await queue.get(no_ack=False, timeout=5)
        assert message is not None
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id == Envelope.model_validate_json(message.body).event_id
        await message.nack(requeue=True)
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            # a classic re-declaration of a quorum queue is refused by the broker
            await channel.declare_queue(
                queue_name, durable=True, arguments={"x-queue-type": "classic"}
            )


async def test_readiness_follows_the_connection(proxy: TcpProxy, amqp_url: str, buses) -> None:
    handled: list[str] = []

    async def handler(env: Envelope) -> None:
        handled.append(env.event_id)

    bus = buses("rooms", url=via(proxy, amqp_url), heartbeat=5)
    bus.subscribe(Subscription("rooms.ended", ("room.ended",), handler))
    await bus.start()
    assert bus.health().ok
    proxy.pause()
    proxy.drop_all()
    await wait_until(lambda: not bus.health().ok, message="readiness to turn red")
    proxy.resume()
    await wait_until(lambda: bus.health().ok, timeout=30, message="readiness to turn green")
    sent = ended(3)
    await bus.publish(sent)
    await wait_until(lambda: handled == [sent.event_id], message="consuming after the outage")
