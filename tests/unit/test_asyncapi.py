"""docs/asyncapi.yaml is generated from the event models and the topology, stays
in step with them, names every event and queue, is a valid AsyncAPI 3.0.0
document by the official JSON Schema, and is what every app serves. It also
describes the notifier's WebSocket: every frame type and close code the
notifier's code can use (found in the code, not listed here), and frames the
real session writes match their schemas."""

from __future__ import annotations

import ast
import asyncio
import copy
import importlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from fastapi.routing import APIWebSocketRoute
from referencing import Registry
from referencing.jsonschema import DRAFT7

from services.notifier.board import ROOM_FRAME, RoomView
from services.notifier.domain import FRAME_TYPES, FeedRow, entries_for
from services.notifier.live import Hub, Session
from services.notifier.typing_relay import TYPING_FRAME
from services.notifier.typing_relay import frame as typing_frame
from shared import asyncapi_ws
from shared.app import create_app
from shared.asyncapi import CONTENT_TYPE, REGENERATE, SCHEMAS, document, render
from shared.asyncapi_ws import WS_CHANNEL, WS_PATH, WS_SERVER
from shared.auth import Principal, auth_frame_token
from shared.events import (
    REGISTRY,
    AttachmentRef,
    ChannelJoined,
    ChannelLeft,
    ChannelRead,
    Envelope,
    MessageDeleted,
    MessagePosted,
    MessageUpdated,
    RoomScheduled,
    UserMentioned,
    UserTyping,
)
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


def _amqp(items: dict[str, Any]) -> dict[str, Any]:
    """The channels or operations of the broker (not the WebSocket's)."""
    return {k: v for k, v in items.items() if "amqp" in v.get("bindings", {})}


def test_every_event_type_has_a_message_and_a_routing_key_channel() -> None:
    doc = document()
    messages = _amqp(doc["components"]["messages"])
    assert set(messages) == set(REGISTRY)
    addresses = {channel["address"]: channel for channel in _amqp(doc["channels"]).values()}
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
        for channel in _amqp(doc["channels"]).values()
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
    operations = _amqp(doc["operations"])
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


# --- (f) the notifier's WebSocket ----------------------------------------------------

NOTIFIER = ROOT / "services" / "notifier"


def _notifier_modules() -> Iterator[tuple[ModuleType, ast.Module]]:
    for path in sorted(NOTIFIER.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        yield importlib.import_module(name), ast.parse(path.read_text(encoding="utf-8"))


def frame_types_in_code() -> set[str]:
    """Every frame type the notifier's code can write: the feed's (FRAME_TYPES), its
    `*_FRAME` constants, and every `{"type": <a string, or a constant>}` it builds."""
    found = set(FRAME_TYPES.values())
    for module, tree in _notifier_modules():
        found |= {v for k, v in vars(module).items() if k.endswith("_FRAME") and isinstance(v, str)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if not (isinstance(key, ast.Constant) and key.value == "type"):
                    continue
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.add(value.value)
                elif isinstance(value, ast.Name):
                    constant = getattr(module, value.id, None)  # a parameter is not one
                    if isinstance(constant, str):
                        found.add(constant)
    return found


def close_codes_in_code() -> set[int]:
    """Every close code the notifier's code can use: its `CLOSE_*` constants, the
    literal codes it closes with, and `code=` defaults."""
    codes: set[int] = set()
    for module, tree in _notifier_modules():
        codes |= {
            v
            for k, v in vars(module).items()
            if k.startswith("CLOSE_") and isinstance(v, int) and not isinstance(v, bool)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                first = node.args[0]
                if (
                    name in {"close", "_refuse", "SessionEnded"}
                    and isinstance(first, ast.Constant)
                    and isinstance(first.value, int)
                ):
                    codes.add(first.value)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = node.args
                positional = arguments.args[len(arguments.args) - len(arguments.defaults) :]
                pairs = [
                    *zip(positional, arguments.defaults, strict=True),
                    *zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True),
                ]
                for arg, default in pairs:
                    if (
                        arg.arg == "code"
                        and isinstance(default, ast.Constant)
                        and isinstance(default.value, int)
                    ):
                        codes.add(default.value)
    return codes


def client_frame_types_in_code() -> set[str]:
    """The frame types the server reads from a client: `….get("type") == "<x>"` in
    shared/auth (the auth frame) and the notifier."""
    found: set[str] = set()
    paths = [ROOT / "shared" / "auth" / "dependencies.py", *sorted(NOTIFIER.rglob("*.py"))]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Call)):
                continue
            call = node.left
            if (
                isinstance(call.func, ast.Attribute)
                and call.func.attr == "get"
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and call.args[0].value == "type"
            ):
                for comparator in node.comparators:
                    if isinstance(comparator, ast.Constant) and isinstance(comparator.value, str):
                        found.add(comparator.value)
    return found


def _ws(doc: dict[str, Any]) -> dict[str, Any]:
    channel: dict[str, Any] = doc["channels"][WS_CHANNEL]
    return channel


def _frame_names(doc: dict[str, Any], action: str) -> set[str]:
    """The frame types (message names) of the WebSocket's operations with this
    action (the client's `typing` is the message `client.typing`)."""
    return {
        _pointer(doc, _pointer(doc, message["$ref"])["$ref"])["name"]
        for op in doc["operations"].values()
        if op["channel"]["$ref"] == f"#/channels/{WS_CHANNEL}" and op["action"] == action
        for message in op["messages"]
    }


def test_the_code_scans_find_what_they_look_for() -> None:
    """The scans below are not vacuous: they find frames and codes of every kind."""
    frames = frame_types_in_code()
    assert {"message.posted", "session.ready", "session.renewed", "room.updated"} <= frames
    codes = close_codes_in_code()
    assert {4401, 4429} <= codes  # constants
    assert 1011 in codes  # a literal
    assert 1001 in codes  # a default
    assert client_frame_types_in_code() == {"auth", "typing"}


def test_the_websocket_is_a_channel_on_its_own_server() -> None:
    assert (asyncapi_ws.SCHEMAS, asyncapi_ws.CONTENT_TYPE) == (SCHEMAS, CONTENT_TYPE)
    doc = document()
    server = doc["servers"][WS_SERVER]
    assert server["protocol"] == "ws"
    channel = _ws(doc)
    assert channel["address"] == WS_PATH
    assert channel["servers"] == [{"$ref": f"#/servers/{WS_SERVER}"}]
    binding = channel["bindings"]["ws"]
    assert binding["method"] == "GET"
    assert set(binding["query"]["properties"]) == {"since", "token"}
    # the route is where the document says, and takes `since`
    from services.notifier.api import router

    (route,) = [r for r in router.routes if isinstance(r, APIWebSocketRoute)]
    assert route.path == WS_PATH
    assert "since" in inspect.signature(route.endpoint).parameters


def test_every_frame_type_the_notifier_writes_is_documented() -> None:
    doc = document()
    in_code = frame_types_in_code()
    assert _frame_names(doc, "send") == in_code
    messages = doc["components"]["messages"]
    schemas = doc["components"]["schemas"]
    for frame_type in in_code:
        assert frame_type in _ws(doc)["messages"]
        message = _pointer(doc, _ws(doc)["messages"][frame_type]["$ref"])
        assert message is messages[f"ws.{frame_type}"]
        assert message["name"] == frame_type
        payload = _pointer(doc, message["payload"]["$ref"])
        assert payload["properties"]["type"]["const"] == frame_type
        assert ("cursor" in payload["required"]) is message["x-belfry-cursor"]
    for event_type, frame_type in FRAME_TYPES.items():  # the feed's: their event's data
        payload = schemas[messages[f"ws.{frame_type}"]["payload"]["$ref"].rsplit("/", 1)[1]]
        assert payload["properties"]["data"] == {"$ref": f"#/components/schemas/{event_type}"}
        assert event_type in REGISTRY


def test_every_frame_the_client_may_send_is_documented() -> None:
    doc = document()
    assert _frame_names(doc, "receive") == client_frame_types_in_code()
    auth = _pointer(doc, doc["components"]["messages"]["ws.auth"]["payload"]["$ref"])
    assert auth["required"] == ["type", "token"]


def test_every_close_code_the_notifier_uses_is_documented() -> None:
    doc = document()
    documented = {entry["code"] for entry in _ws(doc)["x-close-codes"]}
    assert documented == close_codes_in_code()
    description = _ws(doc)["description"]
    for entry in _ws(doc)["x-close-codes"]:
        assert f"**{entry['code']}**" in description
        assert entry["reasons"], entry
        assert entry["when"]
        assert entry["then"]
    reasons = {r for entry in _ws(doc)["x-close-codes"] for r in entry["reasons"]}
    assert {"token_expired", "token_revoked", "too_many_sessions", "auth_unavailable"} <= reasons


def test_docs_notifier_points_to_the_document_and_names_every_close_code() -> None:
    page = (ROOT / "docs" / "notifier.md").read_text(encoding="utf-8")
    assert "asyncapi.yaml" in page
    for code in close_codes_in_code():
        assert str(code) in page, code
    for frame_type in frame_types_in_code():
        assert f"`{frame_type}`" in page or f'"{frame_type}"' in page, frame_type


def _schema_validator(doc: dict[str, Any], name: str) -> jsonschema.Draft7Validator:
    registry: Registry[Any] = Registry().with_resource(
        "urn:belfry:asyncapi", DRAFT7.create_resource(doc)
    )
    ref = f"urn:belfry:asyncapi#/components/schemas/{name}"
    return jsonschema.Draft7Validator({"$ref": ref}, registry=registry)


class _Socket:
    """A client that sends one renewal after the ready frame, then waits."""

    def __init__(self) -> None:
        self.client_state = self.application_state = None
        self.frames: list[dict[str, Any]] = []
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._inbox.put_nowait({"type": "websocket.receive", "text": "not json"})
        self._inbox.put_nowait(
            {"type": "websocket.receive", "text": json.dumps({"type": "auth", "token": "fresh"})}
        )

    async def accept(self) -> None:
        return None

    async def send_text(self, text: str) -> None:
        self.frames.append(json.loads(text))

    async def receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def close(self, code: int, reason: str = "") -> None:
        self._inbox.put_nowait({"type": "websocket.disconnect", "code": code})


class _Feed:
    def __init__(self, rows: list[FeedRow]) -> None:
        self.rows = rows

    async def head(self, user_id: str) -> int:
        return len(self.rows)

    async def read(self, user_id: str, after: int, limit: int = 100) -> tuple[list[FeedRow], bool]:
        page = self.rows[after : after + limit]
        return page, len(page) == limit


class _Renewing:
    """SessionAuth's part a session uses: renewals succeed and move `expires_at`."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.expires_at = 1_900_000_000.0

    async def renew(self, token: str) -> Principal:
        self.expires_at = 1_900_003_600.0
        return self.principal

    async def watch(self) -> None:
        await asyncio.Event().wait()


def _feed_events() -> list[Any]:
    at = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)
    channel = {
        "channel_id": "ch1",
        "channel_arn": "arn:aws:chime:us-east-1:1:app-instance/a/channel/ch1",
        "channel_kind": "customer",
        "customer_id": "carl",
    }
    return [
        MessagePosted(
            message_id="m1", sender_id="carl", content="hi @mia", mentions=["mia"],
            posted_at=at, **channel,
        ),
        UserMentioned(
            mention_id="n1", message_id="m1", mentioned_user_id="mia", mentioned_by="carl",
            excerpt="hi @mia", **channel,
        ),
        ChannelJoined(user_id="mia", reason="mention", **channel),
        ChannelLeft(user_id="mia", reason="manual", **channel),
        MessageUpdated(
            message_id="m1", sender_id="carl", content="hi", posted_at=at, edited_at=at,
            **channel,
        ),
        MessageDeleted(
            message_id="m1", sender_id="carl", deleted_at=at, deleted_by="carl", **channel
        ),
        ChannelRead(
            channel_id="ch1", user_id="mia", up_to="m1", read_at="2026-05-04T12:30:00Z",
            unread_count=0, channel_kind="customer", customer_id="carl",
        ),
    ]  # fmt: skip


async def test_the_frames_a_real_session_writes_match_their_schemas() -> None:
    """A session (services.notifier.live) replays a feed with one row of every feed
    frame type, takes a renewal and a room broadcast: every frame it writes is valid
    against its documented schema, and every server frame type is among them."""
    mia = Principal("mia", groups=frozenset({"manager"}))
    rows = []
    for seq, event in enumerate(_feed_events(), start=1):
        (entry,) = [e for e in entries_for(f"e{seq}", event, ["mia"]) if e.user_id == "mia"]
        rows.append(FeedRow(seq, entry.frame_type, entry.data, entry.audience))
    socket = _Socket()
    hub = Hub()
    session = Session(
        socket,  # type: ignore[arg-type]
        mia,
        _Feed(rows),
        replay_limit=1000,
        send_buffer=16,
        send_timeout=2,
        poll_seconds=10,
        auth=_Renewing(mia),  # type: ignore[arg-type]
    )
    hub.add(session)
    assert await session.start("0")
    running = asyncio.create_task(session.run())
    try:
        view = RoomView("r1", "Standup", "active", 3)
        hub.broadcast(view.room_id, ROOM_FRAME, view.frame())
        typing = UserTyping(channel_id="customer-carl", user_id="carl", recipients=["mia"])
        hub.push_to(["mia"], "t", TYPING_FRAME, typing_frame(typing), lambda _: True)
        wanted = frame_types_in_code()
        deadline = asyncio.get_running_loop().time() + 10
        while {f["type"] for f in socket.frames} != wanted:
            assert asyncio.get_running_loop().time() < deadline, socket.frames
            await asyncio.sleep(0.01)
    finally:
        await socket.close(1000)
        await asyncio.wait_for(running, 5)
        hub.remove(session)
    doc = document()
    for frame in socket.frames:
        name = doc["components"]["messages"][f"ws.{frame['type']}"]["payload"]["$ref"]
        validator = _schema_validator(doc, name.rsplit("/", 1)[1])
        assert _errors(validator, frame) == [], frame
        broken = {**frame, "data": 7}
        assert _errors(validator, broken), broken
        if "cursor" in frame:
            assert _errors(validator, {**frame, "cursor": "x"}), "a cursor is digits"
    assert socket.frames[0]["type"] == "session.ready"
    renewed = next(f for f in socket.frames if f["type"] == "session.renewed")
    assert renewed["data"] == {"expires_at": 1_900_003_600}


def test_an_auth_frame_is_what_the_server_reads() -> None:
    doc = document()
    validator = _schema_validator(doc, "AuthFrame")
    good = {"type": "auth", "token": "abc"}
    assert _errors(validator, good) == []
    assert auth_frame_token(json.dumps(good)) == "abc"
    for bad in ({"type": "auth", "token": ""}, {"type": "auth"}, {"type": "hello", "token": "x"}):
        assert _errors(validator, bad), bad
        assert auth_frame_token(json.dumps(bad)) is None
