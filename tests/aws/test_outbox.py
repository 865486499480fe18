"""The outbox over real RabbitMQ and moto's DynamoDB."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.aws import AwsClients
from shared.bus import EventBus, PublishFailed, Subscription, create_bus
from shared.bus.amqp import AmqpBus
from shared.dynamo import TableSpec, ensure_tables, to_item
from shared.events import Envelope, RoomScheduled
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.settings import BelfrySettings
from shared.store import Store
from tests.support import wait_until

pytestmark = pytest.mark.amqp

SCHEDULE = TableSpec("schedule", hash_key="pk")


def scheduled(room_id: str) -> Envelope:
    data = RoomScheduled(
        room_id=room_id,
        title=room_id,
        topic="t",
        start_at=10,
        end_at=70,
        duration_minutes=1,
        media_region="us-east-1",
        scheduled_by="admin",
    )
    return Envelope.new(data, producer="scheduler")


class DownBus(AmqpBus):
    """A bus whose broker went away right after the DynamoDB write."""

    async def publish(self, envelope: Envelope) -> None:
        raise PublishFailed("connection lost")


@pytest.fixture
async def env(aws: AwsClients, test_id: str, amqp_url: str, make_settings: Callable):
    settings: BelfrySettings = make_settings(amqp_url=amqp_url)
    tables = await ensure_tables(aws.dynamodb, test_id, "scheduler", [OUTBOX_TABLE, SCHEDULE])
    got: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        got.append(envelope)

    consumer = create_bus(settings, "rooms")
    consumer.subscribe(Subscription("rooms.schedule", ("room.scheduled",), record))
    await consumer.start()
    buses: list[EventBus] = [consumer]
    yield settings, tables, got, buses
    for bus in buses:
        if isinstance(bus, AmqpBus) and bus is consumer:
            await bus.stop_consuming(2)
            await bus.delete_topology(exchanges=True)
        await bus.stop(2)


def row(table: str, room_id: str) -> dict:
    return {"Put": {"TableName": table, "Item": to_item({"pk": room_id})}}


async def test_commit_writes_state_and_publishes_the_event(aws: AwsClients, env) -> None:
    settings, tables, got, buses = env
    bus = create_bus(settings, "scheduler")
    buses.append(bus)
    await bus.start()
    outbox = Outbox(aws.dynamodb, tables["outbox"], bus)
    sent = scheduled("r1")
    await Store(aws.dynamodb, outbox=outbox).commit([row(tables["schedule"], "r1")], events=[sent])
    await wait_until(lambda: [e.event_id for e in got] == [sent.event_id], message="the event")
    assert await outbox.pending(older_than_seconds=0) == []  # marked sent


async def test_an_event_whose_publish_died_after_the_write_is_relayed(aws: AwsClients, env) -> None:
    settings, tables, got, buses = env
    dead = DownBus("scheduler", url=settings.amqp_url, exchange=settings.exchange)
    writer = Store(aws.dynamodb, outbox=Outbox(aws.dynamodb, tables["outbox"], dead))
    lost = [scheduled("r1"), scheduled("r2")]
    await writer.commit([row(tables["schedule"], "r1")], events=lost[:1])
    await writer.commit([row(tables["schedule"], "r2")], events=lost[1:])
    state = await aws.dynamodb.get_item(TableName=tables["schedule"], Key=to_item({"pk": "r1"}))
    assert "Item" in state  # the state is there, the events are not out yet
    assert got == []

    # A new process (or the relay loop of a peer) finds the rows and sends them.
    bus = create_bus(settings, "scheduler")
    buses.append(bus)
    await bus.start()
    relay = Outbox(aws.dynamodb, tables["outbox"], bus, grace_seconds=0)
    assert len(await relay.pending()) == 2
    assert await relay.relay_once() == 2
    await wait_until(lambda: len(got) == 2, message="both relayed events")
    assert sorted(e.event_id for e in got) == sorted(e.event_id for e in lost)
    assert await relay.pending() == []


async def test_the_relay_leaves_fresh_rows_to_their_writer(aws: AwsClients, env) -> None:
    settings, tables, got, buses = env
    dead = DownBus("scheduler", url=settings.amqp_url, exchange=settings.exchange)
    writer = Store(aws.dynamodb, outbox=Outbox(aws.dynamodb, tables["outbox"], dead))
    await writer.commit([row(tables["schedule"], "r1")], events=[scheduled("r1")])
    bus = create_bus(settings, "scheduler")
    buses.append(bus)
    await bus.start()
    relay = Outbox(aws.dynamodb, tables["outbox"], bus, grace_seconds=60)
    assert await relay.relay_once() == 0
    assert await relay.flush() == 1  # graceful shutdown sends whatever is pending
    await wait_until(lambda: len(got) == 1, message="the flushed event")
