"""Tracing (shared/tracing.py): the trace context from a request through the
outbox and the in-memory bus to the handler, its spans, and that it is off
by default. Over RabbitMQ and the real services: tests/story/test_tracing.py."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from structlog.contextvars import get_contextvars

from shared import tracing
from shared.app import create_app
from shared.bus import Subscription
from shared.bus.memory import MemoryBus
from shared.events import Envelope, RoomScheduled
from shared.outbox import Outbox, OutboxRow
from shared.settings import BelfrySettings
from tests.support import wait_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def scheduled(room_id: str = "r1") -> Envelope:
    data = RoomScheduled(
        room_id=room_id,
        title="t",
        topic="t",
        start_at=10,
        end_at=70,
        duration_minutes=1,
        media_region="us-east-1",
        scheduled_by="admin",
    )
    return Envelope.new(data, producer="scheduler")


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


class FakeDynamo:
    """The two calls the outbox relay makes: a Query per shard, BatchWriteItem."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.deleted: list[Any] = []

    async def query(self, **kwargs: Any) -> dict[str, Any]:
        shard = kwargs["ExpressionAttributeValues"][":shard"]["S"]
        return {"Items": [i for i in self.items if i["shard"]["S"] == shard]}

    async def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        self.deleted += next(iter(kwargs["RequestItems"].values()))
        return {}


async def started_bus(got: list[tuple[Envelope, Any]], fail_first: bool = False) -> MemoryBus:
    bus = MemoryBus("rooms", retry_delays=(0.01,))
    seen: set[str] = set()

    async def handler(envelope: Envelope) -> None:
        context = trace.get_current_span().get_span_context()
        got.append((envelope, (context, get_contextvars().get("trace_id"))))
        if fail_first and envelope.event_id not in seen:
            seen.add(envelope.event_id)
            raise RuntimeError("the first attempt fails")

    bus.subscribe(Subscription("rooms.schedule", ("room.scheduled",), handler))
    await bus.start()
    return bus


async def test_the_memory_bus_carries_the_context_from_publisher_to_handler(
    spans: InMemorySpanExporter,
) -> None:
    got: list[tuple[Envelope, Any]] = []
    bus = await started_bus(got)
    try:
        tracer = tracing._state.tracer
        assert tracer is not None
        with tracer.start_as_current_span("request") as request:
            await bus.publish(scheduled())
        await wait_until(lambda: bool(got), message="the handler")
        await wait_until(lambda: bool(named(spans, "process RoomScheduled")))
    finally:
        await bus.stop(1)
    [producer] = named(spans, "publish room.scheduled")
    [consumer] = named(spans, "process RoomScheduled")
    assert producer.kind is SpanKind.PRODUCER
    assert consumer.kind is SpanKind.CONSUMER
    trace_id = request.get_span_context().trace_id
    assert producer.context is not None
    assert consumer.context is not None
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert producer.context.trace_id == consumer.context.trace_id == trace_id
    # the handler runs inside the consumer span, its trace id in the log context
    [(_, (context, logged))] = got
    assert context.span_id == consumer.context.span_id
    assert logged == format(trace_id, "032x")
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.system"] == "belfry.memory"
    assert consumer.attributes["messaging.destination.name"] == "rooms.schedule"
    assert consumer.attributes["belfry.outcome"] == "ack"


async def test_a_retried_delivery_stays_in_its_trace(spans: InMemorySpanExporter) -> None:
    got: list[tuple[Envelope, Any]] = []
    bus = await started_bus(got, fail_first=True)
    try:
        await bus.publish(scheduled())
        await wait_until(lambda: len(named(spans, "process RoomScheduled")) == 2)
    finally:
        await bus.stop(1)
    [producer] = named(spans, "publish room.scheduled")
    first, second = sorted(named(spans, "process RoomScheduled"), key=lambda s: s.start_time or 0)
    assert producer.context is not None
    for attempt in (first, second):
        assert attempt.parent is not None
        assert attempt.parent.span_id == producer.context.span_id
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes is not None
    assert first.attributes["belfry.outcome"] == "retry"
    assert second.attributes is not None
    assert second.attributes["belfry.attempt"] == 2
    assert second.status.status_code is StatusCode.UNSET


async def test_the_outbox_row_keeps_the_committing_context_for_the_relay(
    spans: InMemorySpanExporter,
) -> None:
    got: list[tuple[Envelope, Any]] = []
    bus = await started_bus(got)
    dynamo = FakeDynamo()
    outbox = Outbox(dynamo, "outbox", bus, shards=1)  # type: ignore[arg-type]
    tracer = tracing._state.tracer
    assert tracer is not None
    with tracer.start_as_current_span("handler") as committing:
        row = outbox.row(scheduled())
    item = row.item("outbox")["Put"]["Item"]
    assert item["traceparent"]["S"] == row.trace["traceparent"]
    assert OutboxRow.from_item(item).trace == row.trace
    dynamo.items.append(item)
    try:
        # the writer died before publishing: the relay, in no request, publishes it
        assert trace.get_current_span().get_span_context().is_valid is False
        assert await outbox.relay_once(older_than_seconds=0) == 1
        await wait_until(lambda: bool(got), message="the relayed event")
        await wait_until(lambda: bool(named(spans, "process RoomScheduled")))
    finally:
        await bus.stop(1)
    [producer] = named(spans, "publish room.scheduled")
    [consumer] = named(spans, "process RoomScheduled")
    context = committing.get_span_context()
    assert producer.parent is not None
    assert producer.parent.span_id == context.span_id
    assert hex_trace(producer) == hex_trace(consumer) == format(context.trace_id, "032x")
    await wait_until(lambda: bool(dynamo.deleted), message="the row forgotten once published")


async def test_events_a_handler_emits_continue_its_trace(spans: InMemorySpanExporter) -> None:
    bus = MemoryBus("rooms")
    outbox = Outbox(FakeDynamo(), "outbox", bus, shards=1)  # type: ignore[arg-type]
    rows: list[OutboxRow] = []

    async def handler(envelope: Envelope) -> None:
        rows.append(outbox.row(scheduled("r2")))  # what a handler's commit writes

    bus.subscribe(Subscription("rooms.schedule", ("room.scheduled",), handler))
    await bus.start()
    try:
        await bus.publish(scheduled())
        await wait_until(lambda: bool(rows) and bool(named(spans, "process RoomScheduled")))
    finally:
        await bus.stop(1)
    [consumer] = named(spans, "process RoomScheduled")
    assert consumer.context is not None
    _version, trace_id, span_id, _ = rows[0].trace["traceparent"].split("-")
    assert (trace_id, span_id) == (hex_trace(consumer), format(consumer.context.span_id, "016x"))


async def test_an_http_request_continues_its_traceparent(spans: InMemorySpanExporter) -> None:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"trace_id": format(trace.get_current_span().get_span_context().trace_id, "032x")}

    app = create_app(title="t", service="probe", routers=[router])
    app.state.settings = BelfrySettings()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        answer = await client.get("/things/7", headers={"traceparent": TRACEPARENT})
        assert (await client.get("/healthz")).status_code == 200
    assert answer.json() == {"trace_id": TRACE_ID}
    [server] = spans.get_finished_spans()  # the probe is not traced
    assert server.name == "GET /things/{thing_id}"
    assert server.kind is SpanKind.SERVER
    assert hex_trace(server) == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/things/{thing_id}"
    assert server.attributes["http.response.status_code"] == 200


def test_aws_hooks_make_a_client_span_and_mark_errors(spans: InMemorySpanExporter) -> None:
    model = SimpleNamespace(
        name="TransactWriteItems", service_model=SimpleNamespace(service_id="DynamoDB")
    )
    context: dict[str, Any] = {"client_region": "eu-west-1"}
    params = {"TransactItems": [{"Put": {"TableName": "b-rooms"}}, {"Update": {"TableName": "a"}}]}
    tracing._aws_started(params=params, model=model, context=context)
    assert "belfry.span" not in context  # a call outside any trace (a loop) is not traced
    tracer = tracing._state.tracer
    assert tracer is not None
    handler = tracer.start_span("handler")
    token = otel_context.attach(trace.set_span_in_context(handler))
    tracing._aws_started(params=params, model=model, context=context)
    parsed = {"Error": {"Code": "TransactionCanceledException"}, "ResponseMetadata": {}}
    tracing._aws_answered(SimpleNamespace(status_code=400), parsed, context)
    chime = SimpleNamespace(
        name="SendChannelMessage", service_model=SimpleNamespace(service_id="Chime SDK Messaging")
    )
    tracing._aws_started(params={}, model=chime, context=context)
    tracing._aws_failed(ConnectionError("reset"), context)
    otel_context.detach(token)
    handler.end()
    dynamo, send, _ = spans.get_finished_spans()
    assert (dynamo.name, send.name) == (
        "DynamoDB.TransactWriteItems",
        "ChimeSDKMessaging.SendChannelMessage",
    )
    assert dynamo.kind is SpanKind.CLIENT
    assert dynamo.attributes is not None
    assert dynamo.attributes["rpc.system"] == "aws-api"
    assert dynamo.attributes["rpc.method"] == "TransactWriteItems"
    assert dynamo.attributes["aws.dynamodb.table_names"] == ("a", "b-rooms")
    assert dynamo.attributes["error.type"] == "TransactionCanceledException"
    assert dynamo.status.status_code is StatusCode.ERROR
    assert send.status.status_code is StatusCode.ERROR
    assert send.events[0].name == "exception"


# --- off by default ------------------------------------------------------------------


async def test_off_by_default_nothing_is_traced_or_added(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.OTLP_ENDPOINTS:
        monkeypatch.delenv(name, raising=False)
    assert not tracing.enabled()
    with tracing.configured(BelfrySettings(), "rooms") as provider:
        assert provider is None
        assert not tracing.enabled()
    bus = MemoryBus("rooms")
    await bus.declare({"rooms.schedule": ("room.scheduled",)})
    await bus.publish(scheduled())
    _body, _attempt, headers = bus.broker.queues["rooms.schedule"].pending.get_nowait()
    assert headers == {}  # no traceparent: decided, see docs/operations.md
    row = Outbox(FakeDynamo(), "outbox", bus).row(scheduled())  # type: ignore[arg-type]
    assert row.trace == {}
    assert "traceparent" not in row.item("outbox")["Put"]["Item"]
    assert tracing.carrier() == {}


def test_what_turns_tracing_on() -> None:
    off = BelfrySettings()
    assert tracing.wanted(off, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted(off, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/v1/traces"})
    assert not tracing.wanted(off, {"OTEL_EXPORTER_OTLP_ENDPOINT": ""})
    on = BelfrySettings(tracing_enabled=True)
    assert tracing.wanted(on, {})
    assert not tracing.wanted(on, {"OTEL_SDK_DISABLED": "true"})


def test_configured_installs_a_provider_named_after_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    settings = BelfrySettings(tracing_enabled=True, tracing_exporter="console")
    with tracing.configured(settings, "rooms") as provider:
        assert tracing.enabled()
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "rooms"
    assert not tracing.enabled()  # taken away, flushed, with the process's lifespan
    monkeypatch.setenv("OTEL_SERVICE_NAME", "rooms-eu")
    with tracing.configured(settings, "rooms") as provider:
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "rooms-eu"
        assert provider.resource.attributes["belfry.service"] == "rooms"


def test_a_provider_installed_first_is_left_alone(spans: InMemorySpanExporter) -> None:
    with tracing.configured(BelfrySettings(tracing_enabled=True), "rooms") as provider:
        assert provider is None
        assert tracing.enabled()
    assert tracing.enabled()


def test_spans_reach_the_otlp_endpoint_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    try:
        with tracing.configured(BelfrySettings(), "notifier"):  # on: the endpoint is set
            tracer = tracing._state.tracer
            assert tracer is not None
            with tracer.start_as_current_span("process MessagePosted"):
                pass
        # leaving flushed the batch
    finally:
        server.shutdown()
        server.server_close()
    [(path, body)] = received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "notifier"
    [scope] = resource_spans.scope_spans
    assert [s.name for s in scope.spans] == ["process MessagePosted"]
