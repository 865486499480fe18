"""The AsyncAPI 3.0 document of Belfry's events, generated, never hand-written.

Everything in it follows from `shared.events` (every event type, its routing
key and its payload, the JSON Schema of the pydantic models) and
`shared.topology` (every queue, its consumer and its events; who publishes
what). Channels are the exchange's routing keys (what is published) and the
queues (what is consumed); operations are one `send` per publisher and event
and one `receive` per queue and event. The notifier's WebSocket is one more
channel, on its own server: `shared.asyncapi_ws`.

    python -m shared.asyncapi > docs/asyncapi.yaml      # regenerate
    python -m shared.asyncapi --check docs/asyncapi.yaml  # exit 1 if stale

Every process serves the same document at `/asyncapi.yaml` (`shared.app`).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from shared import asyncapi_ws as ws
from shared.events import REGISTRY, Envelope, EventSpec
from shared.settings import BelfrySettings
from shared.topology import PUBLISHERS, QUEUES, Queue

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
CONTENT_TYPE = "application/json"
SERVER = "rabbitmq"
SCHEMAS = "#/components/schemas/"
REGENERATE = "python -m shared.asyncapi > docs/asyncapi.yaml"
_HEADER = f"# Generated from shared/events.py and shared/topology.py: {REGENERATE}\n"


def _default(field: str) -> Any:
    """A messaging setting's default: the topology a default deployment declares."""
    return BelfrySettings.model_fields[field].default


def _version() -> str:
    try:
        return package_version("belfry")
    except PackageNotFoundError:
        return "0.1.0"


def _ref(*parts: str) -> dict[str, str]:
    """A local reference; JSON pointer tokens escaped (RFC 6901)."""
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return {"$ref": "#/" + "/".join(escaped)}


def _key_channel_id(routing_key: str) -> str:
    return routing_key


def _queue_channel_id(queue: Queue) -> str:
    return f"queue.{queue.name}"


def _address(queue: Queue) -> str:
    return f"{queue.name}.{{instance}}" if queue.fanout else queue.name


# --- schemas -------------------------------------------------------------------


def _schemas() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(components.schemas, the envelope payload of each event type).

    pydantic's `$defs` move to `components.schemas`, and its `$ref`s point there
    (`ref_template`), so the document is self-contained."""
    schemas: dict[str, Any] = {}

    def add(name: str, schema: dict[str, Any]) -> None:
        if schemas.get(name, schema) != schema:
            raise ValueError(f"two different schemas are both named {name!r}")
        schemas[name] = schema

    def generate(model: type[Any], *, skip: str = "") -> dict[str, Any]:
        schema: dict[str, Any] = model.model_json_schema(ref_template=SCHEMAS + "{model}")
        for name, definition in schema.pop("$defs", {}).items():
            if name != skip:
                add(name, definition)
        return schema

    # The envelope's generic `data` (EventData) is replaced by each event's model.
    envelope = generate(Envelope, skip="EventData")
    payloads: dict[str, dict[str, Any]] = {}
    for type_name, spec in REGISTRY.items():
        add(type_name, generate(spec.model))
        properties = copy.deepcopy(envelope["properties"])
        properties["type"] = {**properties["type"], "const": type_name}
        properties["version"] = {**properties["version"], "maximum": spec.version}
        properties["data"] = {"$ref": SCHEMAS + type_name}
        payload = {**copy.deepcopy(envelope), "properties": properties}
        payload["title"] = f"{type_name} envelope"
        payload["description"] = (
            f"The JSON envelope of every event, here with the {type_name} event "
            f"(version {spec.version}) as `data`. Unknown fields are tolerated."
        )
        payloads[type_name] = payload
    return dict(sorted(schemas.items())), payloads


def _message(spec: EventSpec, payload: dict[str, Any]) -> dict[str, Any]:
    publishers = PUBLISHERS.get(spec.model, ())
    queues = [q.name for q in QUEUES.values() if spec.model in q.events]
    return {
        "name": spec.type_name,
        "title": spec.type_name,
        "summary": f"{spec.type_name}, routing key {spec.routing_key}.",
        "description": (
            f"Published to `{_default('exchange')}` with routing key `{spec.routing_key}` "
            f"by {_names(publishers)}; consumed from {_names(queues)}. Published persistent "
            "(delivery mode 2) and mandatory, with AMQP properties `message_id` = "
            "`event_id`, `correlation_id`, `type`, `timestamp` = `occurred_at` and "
            "`app_id` = `producer`."
        ),
        "contentType": CONTENT_TYPE,
        "payload": payload,
        "correlationId": {
            "description": "The request or event that caused this event; it is carried on.",
            "location": "$message.payload#/correlation_id",
        },
        "tags": [{"name": service} for service in publishers],
        "bindings": {
            "amqp": {"messageType": spec.type_name, "bindingVersion": AMQP_BINDING_VERSION}
        },
        "x-belfry-routing-key": spec.routing_key,
        "x-belfry-version": spec.version,
    }


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "nobody"


# --- channels ------------------------------------------------------------------


def _key_channel(spec: EventSpec) -> dict[str, Any]:
    return {
        "address": spec.routing_key,
        "title": spec.routing_key,
        "description": (
            f"Routing key `{spec.routing_key}` on the topic exchange "
            f"`{_default('exchange')}`: every {spec.type_name}."
        ),
        "messages": {spec.type_name: _ref("components", "messages", spec.type_name)},
        "servers": [_ref("servers", SERVER)],
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": _default("exchange"),
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }


def _queue_channel(queue: Queue) -> dict[str, Any]:
    exchange = _default("exchange")
    address = _address(queue)
    description = queue.purpose
    parameters: dict[str, Any] = {}
    extensions: dict[str, Any] = {
        "x-belfry-consumer": queue.consumer,
        "x-belfry-fanout": queue.fanout,
        "x-belfry-exchange": exchange,
        "x-belfry-routing-keys": list(queue.routing_keys),
    }
    if queue.fanout:
        description += (
            f" One classic, non-durable queue per {queue.consumer} replica, `{address}`, "
            f"bound to `{exchange}` by these routing keys; it expires once its replica has "
            "not used it for a while, and is never declared ahead."
        )
        parameters["instance"] = {
            "description": "The replica's instance id: BELFRY_INSTANCE_ID, else host name and pid."
        }
        queue_binding = {"name": address, "durable": False, "exclusive": False}
        arguments: dict[str, Any] = {"x-queue-type": "classic"}
    else:
        dlx = _default("dead_letter_exchange")
        retry_queues = [
            f"{queue.name}.retry.{n}" for n in range(1, len(_default("retry_delays_seconds")) + 1)
        ]
        description += (
            f" A durable quorum queue bound to `{exchange}`; a failed delivery is retried "
            f"through `{queue.name}.retry.<n>` (one per back-off) and, after the last one, "
            f"dead-lettered to `{queue.name}.dlq` (via `{dlx}`)."
        )
        queue_binding = {"name": address, "durable": True, "exclusive": False}
        arguments = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dlx,
            "x-dead-letter-routing-key": queue.name,
            "x-delivery-limit": _default("delivery_limit"),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        extensions["x-belfry-retry-queues"] = retry_queues
        extensions["x-belfry-dead-letter-queue"] = f"{queue.name}.dlq"
    channel: dict[str, Any] = {
        "address": address,
        "title": queue.name,
        "summary": f"Consumed by {queue.consumer}.",
        "description": description,
        "messages": {
            event.TYPE: _ref("components", "messages", event.TYPE) for event in queue.events
        },
    }
    if parameters:
        channel["parameters"] = parameters
    channel["servers"] = [_ref("servers", SERVER)]
    channel["bindings"] = {
        "amqp": {
            "is": "queue",
            "queue": {**queue_binding, "autoDelete": False, "vhost": "/"},
            "bindingVersion": AMQP_BINDING_VERSION,
            "x-arguments": arguments,
        }
    }
    return {**channel, **extensions}


def _channels() -> Iterator[tuple[str, dict[str, Any]]]:
    for spec in REGISTRY.values():
        yield _key_channel_id(spec.routing_key), _key_channel(spec)
    for queue in QUEUES.values():
        yield _queue_channel_id(queue), _queue_channel(queue)
    yield ws.WS_CHANNEL, ws.channel()


# --- operations ----------------------------------------------------------------


def _operations() -> Iterator[tuple[str, dict[str, Any]]]:
    for model, services in PUBLISHERS.items():
        spec = REGISTRY[model.TYPE]
        channel = _key_channel_id(spec.routing_key)
        for service in services:
            yield (
                f"send.{service}.{spec.type_name}",
                {
                    "action": "send",
                    "channel": _ref("channels", channel),
                    "messages": [_ref("channels", channel, "messages", spec.type_name)],
                    "title": f"{service} publishes {spec.type_name}",
                    "summary": f"{service} publishes {spec.type_name} ({spec.routing_key}).",
                    "tags": [{"name": service}],
                    "bindings": {
                        "amqp": {
                            "deliveryMode": 2,
                            "mandatory": True,
                            "bindingVersion": AMQP_BINDING_VERSION,
                        }
                    },
                    "x-belfry-publisher": service,
                },
            )
    for queue in QUEUES.values():
        channel = _queue_channel_id(queue)
        for event in queue.events:
            yield (
                f"receive.{queue.name}.{event.TYPE}",
                {
                    "action": "receive",
                    "channel": _ref("channels", channel),
                    "messages": [_ref("channels", channel, "messages", event.TYPE)],
                    "title": f"{queue.consumer} consumes {event.TYPE} from {queue.name}",
                    "summary": f"{queue.consumer} consumes {event.TYPE} from {_address(queue)}.",
                    "tags": [{"name": queue.consumer}],
                    "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
                    "x-belfry-consumer": queue.consumer,
                },
            )


# --- the document --------------------------------------------------------------


def _unique(pairs: Iterator[tuple[str, Any]], what: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"two {what} are both named {key!r}")
        result[key] = value
    return dict(sorted(result.items()))


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document, as plain data; the same on every call."""
    schemas, payloads = _schemas()
    schemas = _unique(iter([*schemas.items(), *ws.schemas().items()]), "schemas")
    channels = _unique(_channels(), "channels")
    services = sorted(
        {s for services in PUBLISHERS.values() for s in services}
        | {q.consumer for q in QUEUES.values()}
    )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:belfry:events",
        "info": {
            "title": "Belfry events",
            "version": _version(),
            "description": (
                "The events Belfry's services (scheduler, rooms, chat, notifier) exchange "
                f"over RabbitMQ: one durable topic exchange `{_default('exchange')}`, "
                "routed by the event's routing key to durable quorum queues "
                "`<service>.<handler>` (the service before the dot consumes it), each with "
                f"retry queues `<queue>.retry.<n>` and a dead-letter queue `<queue>.dlq` "
                f"behind `{_default('dead_letter_exchange')}`. Every message is the JSON "
                "envelope `{event_id, type, version, occurred_at, producer, "
                "correlation_id, data}`, published persistent with `message_id` = "
                "`event_id`. Queue names carry BELFRY_QUEUE_PREFIX (empty by default); "
                "the exchanges are BELFRY_EXCHANGE and BELFRY_DEAD_LETTER_EXCHANGE. "
                f"{ws.SUMMARY} Generated by shared/asyncapi.py: {REGENERATE}"
            ),
            "tags": [{"name": service} for service in services],
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            SERVER: {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "title": "RabbitMQ",
                "description": (
                    "The broker of BELFRY_AMQP_URL (amqp://user:pass@host:5672/vhost); "
                    "`rabbitmq:5672`, vhost `belfry`, in docker-compose.yml."
                ),
            },
            ws.WS_SERVER: ws.server(),
        },
        "channels": channels,
        "operations": _unique(iter([*_operations(), *ws.operations()]), "operations"),
        "components": {
            "messages": {
                name: _message(REGISTRY[name], payloads[name]) for name in sorted(REGISTRY)
            }
            | ws.messages(),
            "schemas": schemas,
        },
    }


def render(doc: Mapping[str, Any] | None = None) -> str:
    """The document as YAML: what docs/asyncapi.yaml holds and `/asyncapi.yaml` serves."""
    import yaml

    body = yaml.safe_dump(
        dict(doc if doc is not None else document()),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return _HEADER + body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.asyncapi", description="Print Belfry's AsyncAPI document."
    )
    parser.add_argument(
        "--check", metavar="FILE", type=Path, help="exit 1 if FILE differs from the document"
    )
    args = parser.parse_args(argv)
    rendered = render()
    if args.check is None:
        sys.stdout.write(rendered)
        return 0
    try:
        current = args.check.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current != rendered:
        sys.stderr.write(f"{args.check} is stale: {REGENERATE}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
