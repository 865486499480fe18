"""The service app end to end with a tiny service: correlation ids travel from
the HTTP request into the event and into the handler's log context; errors
are JSON; probes and metrics answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from structlog.contextvars import get_contextvars

from shared.auth import AdminUser, mint_local_token
from shared.aws import AwsClients
from shared.bus import EventBus, Subscription
from shared.dynamo import ConditionFailed, TableSpec, ensure_tables, to_item
from shared.errors import Conflict
from shared.events import Envelope, RoomCancelled
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.runtime import Component, dynamodb_check
from shared.service import ServiceDefinition, create_platform_app, provided, provided_by
from shared.settings import BelfrySettings
from shared.store import Store
from tests.support import lifespan_client, wait_until

pytestmark = pytest.mark.amqp

ROOMS = TableSpec("rooms", hash_key="pk")
router = APIRouter(prefix="/demo")


class Demo:
    def __init__(self, store: Store, table: str, bus: EventBus) -> None:
        self.bus = bus
        self.store = store
        self.table = table
        self.seen: list[dict[str, Any]] = []

    async def cancel(self, room_id: str, by: str) -> Envelope:
        event = Envelope.new(RoomCancelled(room_id=room_id, cancelled_by=by), producer="demo")
        item = {"Put": {"TableName": self.table, "Item": to_item({"pk": room_id})}}
        item["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
        try:
            await self.store.commit([item], events=[event])
        except ConditionFailed:
            raise Conflict("already cancelled", code="room_cancelled") from None
        return event

    async def on_cancelled(self, env: Envelope) -> None:
        self.seen.append(dict(get_contextvars()))


@router.post("/rooms/{room_id}/cancel", status_code=202)
async def cancel(
    room_id: str, demo: Annotated[Demo, Depends(provided(Demo))], user: AdminUser
) -> dict[str, str]:
    event = await demo.cancel(room_id, user.user_id)
    return {"event_id": event.event_id}


async def build(settings: BelfrySettings, aws: AwsClients, bus: EventBus) -> Component:
    tables = await ensure_tables(
        aws.dynamodb, settings.table_prefix, "demo", [ROOMS, INBOX_TABLE, OUTBOX_TABLE]
    )
    outbox = Outbox(aws.dynamodb, tables["outbox"], bus)
    demo = Demo(
        Store(aws.dynamodb, inbox=Inbox(aws.dynamodb, tables["inbox"]), outbox=outbox),
        tables["rooms"],
        bus,
    )
    return Component(
        name="demo",
        bus=bus,
        provides=(demo,),
        subscriptions=[Subscription("demo.cancelled", ("room.cancelled",), demo.on_cancelled)],
        loops=[outbox.run_relay],
        checks={"dynamodb": dynamodb_check(aws.dynamodb, tables["rooms"])},
        on_stop=[outbox.flush],
    )


DEMO = ServiceDefinition(
    name="demo",
    title="Demo",
    routers=[router],
    settings_type=BelfrySettings,
    build=build,
    aws_services=("dynamodb",),
)


@pytest.fixture(params=["memory", "amqp"])
def settings(request, make_settings: Callable[..., BelfrySettings], moto_url: str):
    url = request.getfixturevalue("amqp_url") if request.param == "amqp" else "memory://"
    return make_settings(amqp_url=url, aws_endpoint_url=moto_url)


async def test_a_request_id_follows_the_event_into_the_handler(settings) -> None:
    app = create_platform_app([DEMO], settings={"demo": settings})
    admin = mint_local_token(settings, "ada", ["admin"])
    async with lifespan_client(app, authorization=f"Bearer {admin}") as client:
        response = await client.post(
            "/demo/rooms/r1/cancel", headers={"x-correlation-id": "req-123"}
        )
        assert response.status_code == 202, response.text
        assert response.headers["x-correlation-id"] == "req-123"
        demo = provided_by(app, Demo)
        await wait_until(lambda: len(demo.seen) == 1, message="the handler")
        assert demo.seen[0]["correlation_id"] == "req-123"
        assert demo.seen[0]["event_id"] == response.json()["event_id"]

        again = await client.post("/demo/rooms/r1/cancel")
        assert again.status_code == 409
        assert again.json() == {"error": {"code": "room_cancelled", "message": "already cancelled"}}

        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) == {"demo.bus", "demo.dynamodb"}
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        scraped = (await client.get("/metrics")).text
        assert 'belfry_bus_published_total{component="demo",event_type="RoomCancelled"}' in scraped
        assert "openapi" in (await client.get("/openapi.json")).json()


async def test_errors_are_json_with_the_right_status(settings) -> None:
    app = create_platform_app([DEMO], settings={"demo": settings})
    customer = mint_local_token(settings, "cy", ["customer"])
    async with lifespan_client(app) as client:
        unauthenticated = await client.post("/demo/rooms/r1/cancel")
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"]["code"] in ("unauthorized", "invalid_token")
        forbidden = await client.post(
            "/demo/rooms/r1/cancel", headers={"authorization": f"Bearer {customer}"}
        )
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "forbidden"
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        wrong_method = await client.get("/demo/rooms/r1/cancel")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"


async def test_readiness_turns_red_when_consumers_stop(settings) -> None:
    app = create_platform_app([DEMO], settings={"demo": settings})
    async with lifespan_client(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        demo = provided_by(app, Demo)
        await demo.bus.stop_consuming(drain_timeout=1)  # what a shutdown does first
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["error"]["code"] == "not_ready"
        assert body["error"]["details"]["demo.bus"]["ok"] is False
        assert body["error"]["details"]["demo.dynamodb"]["ok"] is True


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({}, {"mode": "local"}),
        (
            {
                "auth_mode": "cognito",
                "cognito_user_pool_id": "eu-west-1_Pool",
                "cognito_client_ids": ("browser", "backend"),
            },
            {
                "mode": "cognito",
                "region": "eu-west-1",
                "user_pool_id": "eu-west-1_Pool",
                "client_id": "browser",
                "endpoint": "https://cognito-idp.eu-west-1.amazonaws.com/",
            },
        ),
        (
            {
                "auth_mode": "cognito",
                "cognito_region": "us-east-1",
                "cognito_user_pool_id": "us-east-1_Local",
                "cognito_client_ids": ("console",),
                "cognito_endpoint_url": "http://127.0.0.1:4566",
            },
            {
                "mode": "cognito",
                "region": "us-east-1",
                "user_pool_id": "us-east-1_Local",
                "client_id": "console",
                "endpoint": "http://127.0.0.1:4566",
            },
        ),
    ],
    ids=["local", "aws", "moto"],
)
async def test_auth_config_tells_browsers_where_to_sign_in(
    auth: dict[str, Any], expected: dict[str, str]
) -> None:
    """Public (no token), from the settings the app's verifier was made from; no
    service needs to run for it."""
    app = create_platform_app([DEMO], settings={"demo": BelfrySettings(**auth)})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/auth/config")
        assert response.status_code == 200, response.text
        assert response.json() == expected
        schema = (await client.get("/openapi.json")).json()
    assert "security" not in schema["paths"]["/auth/config"]["get"]
