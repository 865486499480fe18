"""Tracing over real RabbitMQ (docs/operations.md, "Tracing"): one trace from an
HTTP request with a `traceparent` through the outbox and the broker to the
handler of its event and that handler's AWS calls; retry and dead-letter
copies stay in their trace. The spans are kept in memory, in this process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.chat.bootstrap import definition as chat_definition
from services.notifier.bootstrap import definition as notifier_definition
from services.notifier.settings import NotifierSettings
from services.rooms.bootstrap import definition as rooms_definition
from services.rooms.settings import RoomsSettings
from services.scheduler.bootstrap import definition as scheduler_definition
from services.scheduler.settings import SchedulerSettings
from shared.auth import mint_local_token
from shared.bus import RejectEvent, Subscription, create_bus, instance_id
from shared.bus.amqp import AmqpBus
from shared.events import Envelope, RoomScheduled
from shared.service import create_platform_app
from shared.settings import BelfrySettings
from tests.chat.conftest import chat_settings
from tests.support import drop_topology, isolated, lifespan_client, wait_until

pytestmark = pytest.mark.amqp

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def in_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and format(s.context.trace_id, "032x") == trace_id
    ]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


@pytest.fixture
async def platform(amqp_url: str, moto_url: str, chime_url: str) -> AsyncIterator[Any]:
    values: dict[str, Any] = {
        **isolated(),
        "amqp_url": amqp_url,
        "aws_endpoint_url": moto_url,
        "chime_endpoint_url": chime_url,
        "retry_delays_seconds": (0.05, 0.2),
        "log_level": "WARNING",
    }
    scheduler = SchedulerSettings(**values)
    app = create_platform_app(
        [scheduler_definition, rooms_definition],
        settings={"scheduler": scheduler, "rooms": RoomsSettings(**values)},
    )
    token = mint_local_token(scheduler, "ada", ["admin"])
    try:
        async with lifespan_client(app, authorization=f"Bearer {token}") as client:
            yield client
    finally:
        await drop_topology(scheduler)


async def test_a_scheduled_room_is_one_trace_from_the_request_to_rooms_dynamodb_write(
    spans: InMemorySpanExporter, platform: Any
) -> None:
    created = await platform.post(
        "/schedule",
        headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
        json={
            "title": "Traced",
            "start_at": int(time.time()) + 3600,  # ahead: only RoomScheduled happens
            "duration_minutes": 30,
            "topic": "tracing",
            "media_region": "eu-west-2",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text

    def consumed() -> list[ReadableSpan]:
        return [
            s
            for s in in_trace(spans, TRACE_ID)
            if s.name == "process RoomScheduled"
            and s.attributes is not None
            and s.attributes["belfry.service"] == "rooms"
        ]

    def its_writes() -> list[ReadableSpan]:
        ids = {s.context.span_id for s in consumed() if s.context is not None}
        return [
            s
            for s in in_trace(spans, TRACE_ID)
            if s.kind is SpanKind.CLIENT and s.parent is not None and s.parent.span_id in ids
        ]

    await wait_until(
        lambda: bool(consumed()) and bool(its_writes()),
        timeout=15,
        message="rooms' handler span and its DynamoDB write, in the request's trace",
        describe=lambda: str(sorted({s.name for s in spans.get_finished_spans()})),
    )
    trace = in_trace(spans, TRACE_ID)
    [server] = [s for s in trace if s.kind is SpanKind.SERVER]
    assert server.name == "POST /schedule"
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CALLER_SPAN
    [producer] = [s for s in trace if s.name == "publish room.scheduled"]
    assert producer.kind is SpanKind.PRODUCER
    assert producer.attributes is not None
    assert producer.attributes["messaging.system"] == "rabbitmq"
    assert "POST /schedule" in ancestors(producer, trace)  # through the outbox row
    [consumer] = consumed()
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.parent is not None
    assert producer.context is not None
    assert consumer.parent.span_id == producer.context.span_id  # through the AMQP headers
    assert consumer.attributes is not None
    assert consumer.attributes["belfry.outcome"] == "ack"
    assert "DynamoDB.TransactWriteItems" in {s.name for s in its_writes()}
    write = next(s for s in its_writes() if s.name == "DynamoDB.TransactWriteItems")
    assert write.attributes is not None
    assert write.attributes["rpc.system"] == "aws-api"
    assert write.attributes["rpc.service"] == "DynamoDB"
    # the scheduler's own write, in the request
    assert any(
        s.kind is SpanKind.CLIENT
        and s.name == "DynamoDB.TransactWriteItems"
        and s.parent
        and s.parent.span_id == server.context.span_id
        for s in trace
    )


async def test_a_chat_message_is_one_trace_from_the_post_to_the_notifiers_feed(
    spans: InMemorySpanExporter, amqp_url: str, moto_url: str, chime_url: str, test_id: str
) -> None:
    chat = chat_settings(amqp_url, moto_url, chime_url, test_id)
    notifier = NotifierSettings.model_validate(chat.model_dump())
    app = create_platform_app(
        [chat_definition, notifier_definition], settings={"chat": chat, "notifier": notifier}
    )
    customer, manager = f"c-{test_id}", f"m-{test_id}"

    def auth(user: str, group: str) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(chat, user, [group])}"}

    try:
        async with lifespan_client(app) as http:
            for who, group in ((customer, "customer"), (manager, "manager")):
                assert (await http.get("/chat/channels", headers=auth(who, group))).is_success
            assigned = await http.put(
                f"/chat/customers/{customer}/manager",
                json={"manager_id": manager},
                headers=auth("admin-1", "admin"),
            )
            assert assigned.status_code == 200, assigned.text
            channel = assigned.json()["customer_channel"]["channel_id"]
            posted = await http.post(
                f"/chat/channels/{channel}/messages",
                json={"content": "hello"},
                headers={
                    **auth(customer, "customer"),
                    "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
                },
                timeout=30,
            )
            assert posted.status_code == 201, posted.text

            def fed() -> list[ReadableSpan]:
                return [
                    s
                    for s in in_trace(spans, TRACE_ID)
                    if s.name == "process MessagePosted"
                    and s.attributes is not None
                    and s.attributes["messaging.destination.name"] == "notifier.feed"
                    and s.attributes.get("belfry.outcome") == "ack"
                ]

            await wait_until(
                lambda: bool(fed()),
                timeout=15,
                message="the notifier's feed handler in the request's trace",
                describe=lambda: str(sorted({s.name for s in spans.get_finished_spans()})),
            )
    finally:
        await drop_topology(chat, f"notifier.fanout.{instance_id(chat)}")
    trace = in_trace(spans, TRACE_ID)
    [server] = [s for s in trace if s.kind is SpanKind.SERVER]
    assert server.name == "POST /chat/channels/{channel_id}/messages"
    assert server.context is not None
    sends = [s for s in trace if s.name == "ChimeSDKMessaging.SendChannelMessage"]
    assert sends
    assert all(s.kind is SpanKind.CLIENT for s in sends)
    assert ancestors(sends[0], trace) == [server.name]  # the request's own Chime call
    [consumer] = fed()
    assert ancestors(consumer, trace)[-1] == server.name  # publish -> ... -> the request
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.system"] == "rabbitmq"
    # (the feed's own DynamoDB writes are batched by its background writer, outside
    # any span: docs/operations.md says which AWS calls a trace shows)


async def test_retry_and_dead_letter_copies_keep_their_trace(
    spans: InMemorySpanExporter, amqp_url: str, make_settings: Callable[..., BelfrySettings]
) -> None:
    settings = make_settings(amqp_url=amqp_url, retry_delays_seconds=(0.05,))
    bus = create_bus(settings, "rooms")
    attempts: list[int] = []

    async def flaky(envelope: Envelope) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails: retried")
        if len(attempts) == 2:
            raise RejectEvent("probe", "second attempt: dead-lettered")

    bus.subscribe(Subscription("rooms.schedule", ("room.scheduled",), flaky))
    await bus.start()
    try:
        data = RoomScheduled(
            room_id="r1",
            title="t",
            topic="t",
            start_at=10,
            end_at=70,
            duration_minutes=1,
            media_region="us-east-1",
            scheduled_by="ada",
        )
        await bus.publish(Envelope.new(data, producer="scheduler"))
        await wait_until(
            lambda: len(named(spans, "process RoomScheduled")) == 2,
            message="a retry, then a dead letter",
        )

        async def dead_lettered() -> bool:
            return len(await bus.dead_letters("rooms.schedule")) == 1

        await wait_until(dead_lettered, message="the dead letter in rooms.schedule.dlq")
        [letter] = await bus.dead_letters("rooms.schedule")
        assert letter.headers["traceparent"].split("-")[1] == format(
            named(spans, "publish room.scheduled")[0].context.trace_id,
            "032x",
        )
        assert await bus.replay_dead_letters("rooms.schedule") == 1
        await wait_until(lambda: len(attempts) == 3, message="the replayed letter handled")
        await wait_until(lambda: len(named(spans, "process RoomScheduled")) == 3)
    finally:
        assert isinstance(bus, AmqpBus)
        await bus.stop_consuming(drain_timeout=2)
        await bus.delete_topology(exchanges=True)
        await bus.stop(2)
    [producer] = named(spans, "publish room.scheduled")
    assert producer.context is not None
    outcomes = []
    for span in sorted(named(spans, "process RoomScheduled"), key=lambda s: s.start_time or 0):
        assert span.parent is not None
        assert span.parent.span_id == producer.context.span_id
        assert span.attributes is not None
        outcomes.append(span.attributes["belfry.outcome"])
    assert outcomes == ["retry", "dead_letter", "ack"]


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]
