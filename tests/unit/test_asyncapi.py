"""docs/asyncapi.yaml is generated from the event models and the topology, stays
in step with them, names every event and queue, is a valid AsyncAPI 3.0.0
document by the official JSON Schema, and is what every app serves."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT7

from shared.app import create_app
from shared.asyncapi import REGENERATE, document, render
from shared.events import REGISTRY, AttachmentRef, Envelope, MessagePosted, RoomScheduled
from shared.topology import PUBLISHERS, QUEUES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
# npm's @asyncapi/specs, fetched into the venv by the Makefile's install step.
SPECS = Path(os.environ.get("ASYNCAPI_SPECS_DIR") or Path(sys.prefix) / "asyncapi-specs")
OFFICIAL_SCHEMA = SPECS / "schemas" / "3.0.0.json"


@pytest.fixture(scope="module")
def official_validator() -> jsonschema.protocols.Validator:
    if not OFFICIAL_SCHEMA.is_file():
        message = (
            f"the AsyncAPI 3.0.0 JSON Schema is not at {OFFICIAL_SCHEMA}; "
            "`make venv` fetches it (npm @asyncapi/specs)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    schema = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/")
    validator_class = jsonschema.validators.validator_for(schema)
    assert validator_class is jsonschema.Draft7Validator
    validator_class.check_schema(schema)
    return validator_class(schema, registry=_bundle_registry(schema))


def _bundle_registry(schema: dict[str, Any]) -> Registry[Any]:
    """The bundle embeds every definition (draft-07's meta-schema included) under its
    own `$id`; crawling registers them all. A `Registry` fetches nothing: a `$ref`
    outside it is an error, never a download."""
    empty: Registry[Any] = Registry()
    registry: Registry[Any] = empty.with_resource(schema["$id"], DRAFT7.create_resource(schema))
    return registry.crawl()


def _errors(validator: jsonschema.protocols.Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message[:300]}"
        for error in validator.iter_errors(instance)
    ]


# --- (a) kept in step ------------------------------------------------------------


def test_the_committed_document_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), f"docs/asyncapi.yaml is stale: {REGENERATE}"


def test_the_command_prints_and_checks_the_document(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shared.asyncapi", *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )

    printed = run()
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == render()
    assert run("--check", str(DOC)).returncode == 0
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(render().replace("Belfry events", "Old events"), encoding="utf-8")
    checked = run("--check", str(stale))
    assert checked.returncode == 1
    assert REGENERATE in checked.stderr
    assert run("--check", str(tmp_path / "missing.yaml")).returncode == 1


def test_the_document_is_deterministic_and_plain_yaml() -> None:
    assert render() == render()
    assert document() == document()
    assert "&id" not in render(), "no YAML anchors: every object is written out"
    assert yaml.safe_load(DOC.read_text(encoding="utf-8")) == document()


# --- (b) every event and every queue ---------------------------------------------


def test_every_event_type_has_a_message_and_a_routing_key_channel() -> None:
    doc = document()
    messages = doc["components"]["messages"]
    assert set(messages) == set(REGISTRY)
    addresses = {channel["address"]: channel for channel in doc["channels"].values()}
    for type_name, spec in REGISTRY.items():
        message = messages[type_name]
        assert message["name"] == type_name
        assert message["x-belfry-routing-key"] == spec.routing_key
        assert spec.routing_key in message["description"]
        channel = addresses[spec.routing_key]
        assert channel["bindings"]["amqp"]["is"] == "routingKey"
        assert channel["bindings"]["amqp"]["exchange"] == {
            "name": "belfry.events",
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }
        assert channel["messages"] == {type_name: {"$ref": f"#/components/messages/{type_name}"}}
        payload = message["payload"]
        assert payload["properties"]["type"]["const"] == type_name
        assert payload["properties"]["data"] == {"$ref": f"#/components/schemas/{type_name}"}
        assert set(payload["required"]) >= {"event_id", "type", "version", "occurred_at", "data"}
        assert doc["components"]["schemas"][type_name]["title"] == spec.model.__name__


def test_every_queue_has_a_channel_with_its_consumer_and_events() -> None:
    doc = document()
    queues = {
        channel["title"]: channel
        for channel in doc["channels"].values()
        if channel["bindings"]["amqp"]["is"] == "queue"
    }
    assert set(queues) == set(QUEUES)
    for name, queue in QUEUES.items():
        channel = queues[name]
        binding = channel["bindings"]["amqp"]
        assert channel["x-belfry-consumer"] == queue.consumer
        assert queue.consumer in channel["summary"]
        assert channel["x-belfry-routing-keys"] == list(queue.routing_keys)
        assert list(channel["messages"]) == [event.TYPE for event in queue.events]
        if queue.fanout:
            assert channel["address"] == f"{name}.{{instance}}"
            assert "instance" in channel["parameters"]
            assert "per" in channel["description"].lower()
            assert binding["queue"]["durable"] is False
            assert binding["x-arguments"]["x-queue-type"] == "classic"
        else:
            assert channel["address"] == name
            assert binding["queue"] == {
                "name": name,
                "durable": True,
                "exclusive": False,
                "autoDelete": False,
                "vhost": "/",
            }
            assert binding["x-arguments"]["x-queue-type"] == "quorum"
            assert binding["x-arguments"]["x-dead-letter-exchange"] == "belfry.dlx"
            assert channel["x-belfry-dead-letter-queue"] == f"{name}.dlq"


def test_operations_send_for_each_publisher_and_receive_for_each_queue() -> None:
    doc = document()
    operations = doc["operations"]
    sends = {
        (op["x-belfry-publisher"], op["messages"][0]["$ref"].rsplit("/", 1)[1])
        for op in operations.values()
        if op["action"] == "send"
    }
    assert sends == {
        (service, model.TYPE) for model, services in PUBLISHERS.items() for service in services
    }
    receives = {
        (op["channel"]["$ref"], op["x-belfry-consumer"], op["messages"][0]["$ref"])
        for op in operations.values()
        if op["action"] == "receive"
    }
    assert receives == {
        (
            f"#/channels/queue.{name}",
            queue.consumer,
            f"#/channels/queue.{name}/messages/{event.TYPE}",
        )
        for name, queue in QUEUES.items()
        for event in queue.events
    }
    for op in operations.values():
        service = op.get("x-belfry-publisher") or op["x-belfry-consumer"]
        assert op["tags"] == [{"name": service}]
        assert service in op["title"]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _pointer(doc: Any, ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node = doc
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves_inside_the_document() -> None:
    doc = document()
    refs = set(_refs(doc))
    assert refs, "the document uses references"
    for ref in refs:
        assert _pointer(doc, ref) is not None
    assert not [ref for ref in refs if "$defs" in ref], "pydantic's $defs moved to components"
    # An operation's messages are its channel's (AsyncAPI 3).
    for op in doc["operations"].values():
        channel = op["channel"]["$ref"]
        for message in op["messages"]:
            assert message["$ref"].startswith(channel + "/messages/")


# --- (c), (d) the official AsyncAPI 3.0.0 JSON Schema -----------------------------


def test_the_document_is_valid_asyncapi_3(
    official_validator: jsonschema.protocols.Validator,
) -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert _errors(official_validator, doc) == []
    assert _errors(official_validator, yaml.safe_load(DOC.read_text(encoding="utf-8"))) == []


def _schema_refs(node: Any) -> Iterator[str]:
    """The `$ref`s of a schema, not those of its examples."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key not in ("examples", "example"):
                yield from _schema_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_refs(item)


def test_the_official_schema_needs_nothing_from_the_network(
    official_validator: jsonschema.protocols.Validator,
) -> None:
    schema = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
    resolver = _bundle_registry(schema).resolver()
    remote = {ref for ref in _schema_refs(schema) if ref.startswith(("http://", "https://"))}
    assert "http://json-schema.org/draft-07/schema#" in remote
    for ref in remote:
        assert resolver.lookup(ref).contents is not None, ref


DELETE = object()
BROKEN = [
    # (what, where, key, value): `value` replaces `key` in the object at `where`.
    ("AsyncAPI 2 wording", ("operations", "send.scheduler.RoomScheduled"), "action", "publish"),
    ("an info without a title", ("info",), "title", DELETE),
    ("an unknown field", ("channels", "room.scheduled"), "topic", "room.scheduled"),
    (
        "a queue binding naming an exchange",
        ("channels", "queue.chat.membership", "bindings", "amqp"),
        "exchange",
        {"name": "belfry.events"},
    ),
    ("a server without a protocol", ("servers", "rabbitmq"), "protocol", DELETE),
    ("a payload that is no JSON Schema", ("components", "schemas", "RoomScheduled"), "type", 7),
    (
        "a correlation id that is no runtime expression",
        ("components", "messages", "RoomEnded", "correlationId"),
        "location",
        "correlation_id",
    ),
]


@pytest.mark.parametrize(("what", "where", "key", "value"), BROKEN, ids=[b[0] for b in BROKEN])
def test_the_official_schema_rejects_a_broken_document(
    official_validator: jsonschema.protocols.Validator,
    what: str,
    where: tuple[str, ...],
    key: str,
    value: Any,
) -> None:
    broken = copy.deepcopy(document())
    node = broken
    for step in where:
        node = node[step]
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    errors = list(official_validator.iter_errors(broken))
    assert errors, f"{what} should be rejected"
    best = jsonschema.exceptions.best_match(errors)
    assert best is not None
    assert tuple(best.absolute_path)[: len(where)] == where, best.message


# --- the payload schemas describe the real envelopes -------------------------------


def _payload_validator(doc: dict[str, Any], type_name: str) -> jsonschema.Draft7Validator:
    """The message's payload schema, its `#/components/...` references resolved in `doc`."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:belfry:asyncapi", DRAFT7.create_resource(doc)
    )
    ref = f"urn:belfry:asyncapi#/components/messages/{type_name}/payload"
    return jsonschema.Draft7Validator({"$ref": ref}, registry=registry)


def _examples() -> list[Envelope]:
    at = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)
    return [
        Envelope.new(
            RoomScheduled(
                room_id="r1",
                title="Standup",
                topic="daily",
                start_at=1_780_000_000,
                end_at=1_780_001_800,
                duration_minutes=30,
                media_region="eu-central-1",
                scheduled_by="ada",
            ),
            producer="scheduler",
            correlation_id="c-1",
            occurred_at=at,
        ),
        Envelope.new(
            MessagePosted(
                message_id="m1",
                channel_id="ch1",
                channel_arn="arn:aws:chime:us-east-1:1:app-instance/a/channel/ch1",
                sender_id="carl",
                content="hello @mia",
                mentions=["mia"],
                attachments=[
                    AttachmentRef(
                        attachment_id="a1",
                        key="k/a1",
                        name="a.png",
                        size=3,
                        content_type="image/png",
                    )
                ],
                posted_at=at,
                channel_kind="customer",
                customer_id="carl",
            ),
            producer="chat",
            occurred_at=at,
        ),
    ]


@pytest.mark.parametrize("envelope", _examples(), ids=lambda e: e.type)
def test_real_envelopes_match_their_documented_payload(envelope: Envelope) -> None:
    doc = document()
    validator = _payload_validator(doc, envelope.type)
    wire = json.loads(envelope.encode())
    assert _errors(validator, wire) == []
    first_field = next(iter(wire["data"]))  # required in both examples
    for broken in (
        {**wire, "type": "SomethingElse"},
        {key: value for key, value in wire.items() if key != "data"},
        {**wire, "data": {k: v for k, v in wire["data"].items() if k != first_field}},
        {**wire, "data": {**wire["data"], first_field: 7}},
        {**wire, "occurred_at": 7},
    ):
        assert _errors(validator, broken), broken


# --- (e) served by every app ---------------------------------------------------------


async def test_every_app_serves_the_document() -> None:
    app = create_app(title="Demo", service="demo", routers=[])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://belfry.test") as client:
        response = await client.get("/asyncapi.yaml")
        again = await client.get("/asyncapi.yaml")
        schema = (await client.get("/openapi.json")).json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.text == again.text == render()
    assert yaml.safe_load(response.text) == document()
    assert (
        "application/yaml"
        in schema["paths"]["/asyncapi.yaml"]["get"]["responses"]["200"]["content"]
    )
