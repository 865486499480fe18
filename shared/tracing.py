"""Tracing: OpenTelemetry spans from an HTTP request through the outbox and
RabbitMQ to the handlers, and every AWS call they make (docs/operations.md).

Off by default: no tracer is installed, every helper here is a pass-through
and nothing is added to messages or outbox rows. On (`configured`, in the
app's lifespan) when `BELFRY_TRACING_ENABLED=true` or the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
(and `OTEL_SDK_DISABLED` is not `true`): spans go to that OTLP/HTTP endpoint
in batches, with `service.name` the Belfry service (`OTEL_SERVICE_NAME` wins).

    SERVER    "<METHOD> <route template>"   TracingMiddleware; parent: the
                                            request's `traceparent`, if any
    PRODUCER  "publish <routing key>"       the bus's publish; parent: the
                                            context that committed the outbox row
    CONSUMER  "process <event type>"        the dispatcher; parent: the message's
                                            `traceparent` header
    CLIENT    "<AwsService>.<Operation>"    every aiobotocore call made in a trace
                                            (`instrument_aws`); parent: the current span

The context travels as W3C Trace Context (`traceparent`, `tracestate`): in
AMQP message headers (which retry and dead-letter copies keep) and in the
outbox row, because a row is published after its commit, sometimes by the
relay, long after the request that wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from structlog.contextvars import bound_contextvars

from shared.logging import get_logger

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from shared.events import Envelope
    from shared.settings import BelfrySettings

log = get_logger("belfry.tracing")

TRACE_HEADERS = ("traceparent", "tracestate")
OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_SYSTEMS = {"amqp": "rabbitmq", "memory": "belfry.memory"}
_PROPAGATOR = TraceContextTextMapPropagator()


class _State:
    tracer: Tracer | None = None


_state = _State()


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads AMQP headers, whose values aio-pika may hand over as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        return [value.decode("latin-1") if isinstance(value, bytes) else str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


# --- the provider --------------------------------------------------------------


def install(provider: TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: tracing off). Belfry keeps its
    own tracer rather than OpenTelemetry's process-wide provider, which can be
    set once only: tests install an in-memory one and take it away again."""
    _state.tracer = provider.get_tracer("belfry") if provider is not None else None


def enabled() -> bool:
    return _state.tracer is not None


def wanted(settings: BelfrySettings, environ: Mapping[str, str] = os.environ) -> bool:
    """Tracing on: the setting, or an OTLP endpoint in the environment."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return settings.tracing_enabled or any(environ.get(name) for name in OTLP_ENDPOINTS)


@contextmanager
def configured(settings: BelfrySettings, service: str) -> Iterator[TracerProvider | None]:
    """Install the exporting provider for the life of a process (the platform
    app's lifespan); on the way out flush what is buffered. Leaves a provider
    installed by someone else (a test) alone."""
    if enabled() or not wanted(settings):
        yield None
        return
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
    resource = Resource.create(
        {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service, "belfry.service": service}
    )
    provider = SdkTracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER
    if settings.tracing_exporter == "console":
        exporter: Any = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    log.info("tracing.on", service=service, exporter=settings.tracing_exporter)
    try:
        yield provider
    finally:
        install(None)
        provider.shutdown()


# --- context carried in messages and outbox rows -----------------------------


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers; empty when tracing is off."""
    headers: dict[str, str] = {}
    if _state.tracer is not None:
        _PROPAGATOR.inject(headers)
    return headers


_NOTHING: AbstractContextManager[None] = nullcontext()


def resumed(headers: Mapping[str, Any] | None) -> AbstractContextManager[None]:
    """Make the context `headers` carry (an outbox row's) the current one."""
    if _state.tracer is None or not headers:
        return _NOTHING  # off: (almost) free, as are `publishing` and `consuming`
    return _resumed(headers)


@contextmanager
def _resumed(headers: Mapping[str, Any]) -> Iterator[None]:
    token = otel_context.attach(_PROPAGATOR.extract(headers, getter=_GETTER))
    try:
        yield
    finally:
        otel_context.detach(token)


def _trace_id(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


# --- messaging -----------------------------------------------------------------


def publishing(
    envelope: Envelope, *, transport: str, service: str, exchange: str = ""
) -> AbstractContextManager[dict[str, str]]:
    """A PRODUCER span around one publish; yields the headers that carry it
    (empty, and no span, when tracing is off)."""
    tracer = _state.tracer
    if tracer is None:
        return nullcontext({})
    return _publishing(tracer, envelope, transport, service, exchange)


@contextmanager
def _publishing(
    tracer: Tracer, envelope: Envelope, transport: str, service: str, exchange: str
) -> Iterator[dict[str, str]]:
    attributes = {
        "messaging.system": _SYSTEMS.get(transport, transport),
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": exchange or envelope.routing_key,
        "messaging.rabbitmq.destination.routing_key": envelope.routing_key,
        "messaging.message.id": envelope.event_id,
        "messaging.message.conversation_id": envelope.correlation_id or "",
        "belfry.event_type": envelope.type,
        "belfry.service": service,
    }
    name = f"publish {envelope.routing_key}"
    with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes):
        headers: dict[str, str] = {}
        _PROPAGATOR.inject(headers)
        yield headers


def consuming(
    headers: Mapping[str, Any] | None,
    envelope: Envelope,
    *,
    transport: str,
    service: str,
    queue: str,
    attempt: int,
) -> AbstractContextManager[Span | None]:
    """A CONSUMER span around one handler, child of the message's context;
    `trace_id` is in the log context meanwhile. None when tracing is off."""
    tracer = _state.tracer
    if tracer is None:
        return _NOTHING
    where = {"transport": transport, "service": service, "queue": queue}
    return _consuming(tracer, headers, envelope, attempt=attempt, **where)


@contextmanager
def _consuming(
    tracer: Tracer,
    headers: Mapping[str, Any] | None,
    envelope: Envelope,
    *,
    transport: str,
    service: str,
    queue: str,
    attempt: int,
) -> Iterator[Span | None]:
    parent = _PROPAGATOR.extract(headers or {}, getter=_GETTER)
    attributes: dict[str, AttributeValue] = {
        "messaging.system": _SYSTEMS.get(transport, transport),
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": envelope.routing_key,
        "messaging.message.id": envelope.event_id,
        "messaging.message.conversation_id": envelope.correlation_id or "",
        "belfry.event_type": envelope.type,
        "belfry.service": service,
        "belfry.attempt": attempt,
    }
    name = f"process {envelope.type}"
    with (
        tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ) as span,
        bound_contextvars(trace_id=_trace_id(span)),
    ):
        yield span


def settle(span: Span | None, action: str, reason: str = "", error: str = "") -> None:
    """What became of a delivery: `ack`, `retry` or `dead_letter` (an error)."""
    if span is None:
        return
    span.set_attribute("belfry.outcome", action)
    if action != "ack":
        span.set_attribute("error.type", reason or "handler_failed")
        span.set_status(Status(StatusCode.ERROR, error[:200] or reason))


# --- HTTP ------------------------------------------------------------------------


class TracingMiddleware:
    """A SERVER span per HTTP request, "<METHOD> <route template>", continuing
    the request's `traceparent`; probes and WebSockets are not traced."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _state.tracer
        if tracer is None or scope["type"] != "http" or scope.get("path") in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        incoming = {
            name: value.decode("latin-1")
            for raw, value in scope.get("headers") or ()
            if (name := raw.decode("latin-1").lower()) in TRACE_HEADERS
        }
        method = scope.get("method", "GET")
        status = 500
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
            "belfry.service": self.service,
        }
        with tracer.start_as_current_span(
            method,
            context=_PROPAGATOR.extract(incoming),
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            with bound_contextvars(trace_id=_trace_id(span)):
                try:
                    await self.app(scope, receive, send_status)
                finally:
                    template = getattr(scope.get("route"), "path", None)
                    if template:
                        span.update_name(f"{method} {template}")
                        span.set_attribute("http.route", template)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))


# --- AWS -------------------------------------------------------------------------


def instrument_aws(client: Any) -> None:
    """A CLIENT span per AWS API call of this aiobotocore client made within a
    trace (a request, a handler), retries and the Chime budget's wait
    included: "DynamoDB.TransactWriteItems", "ChimeSDKMessaging.SendChannelMessage".
    Calls outside any span (background loops: the outbox relay's sweeps,
    polling) make none. Cheap when tracing is off (the hooks return at once)."""
    events = client.meta.events
    events.register("before-parameter-build", _aws_started)
    events.register("after-call", _aws_answered)
    events.register("after-call-error", _aws_failed)


def _aws_started(params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    tracer = _state.tracer
    if tracer is None or not trace.get_current_span().get_span_context().is_valid:
        return  # off, or a background loop's call (the relay's sweeps): not traced
    service = model.service_model.service_id.replace(" ", "")
    attributes: dict[str, AttributeValue] = {
        "rpc.system": "aws-api",
        "rpc.service": service,
        "rpc.method": model.name,
        "cloud.region": str(context.get("client_region") or ""),
    }
    table = params.get("TableName")
    if isinstance(table, str):
        attributes["aws.dynamodb.table_names"] = [table]
    elif "TransactItems" in params or "RequestItems" in params:
        attributes["aws.dynamodb.table_names"] = _tables(params)
    context["belfry.span"] = tracer.start_span(
        f"{service}.{model.name}", kind=SpanKind.CLIENT, attributes=attributes
    )


def _tables(params: Mapping[str, Any]) -> list[str]:
    if "RequestItems" in params:
        return sorted(params["RequestItems"])
    items: Iterable[Mapping[str, Any]] = params.get("TransactItems") or ()
    return sorted({str(op.get("TableName")) for item in items for op in item.values()})


def _aws_answered(
    http_response: Any, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any
) -> None:
    span: Span | None = context.pop("belfry.span", None)
    if span is None:
        return
    code = int(getattr(http_response, "status_code", 0) or 0)
    meta = parsed.get("ResponseMetadata") or {}
    span.set_attribute("http.response.status_code", code)
    if meta.get("RequestId"):
        span.set_attribute("aws.request_id", str(meta["RequestId"]))
    if meta.get("RetryAttempts"):
        span.set_attribute("belfry.aws.retries", int(meta["RetryAttempts"]))
    if code >= 300:
        error = str((parsed.get("Error") or {}).get("Code") or code)
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def _aws_failed(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    span: Span | None = context.pop("belfry.span", None)
    if span is None:
        return
    span.record_exception(exception)
    span.set_attribute("error.type", type(exception).__name__)
    span.set_status(Status(StatusCode.ERROR, str(exception)[:200]))
    span.end()
