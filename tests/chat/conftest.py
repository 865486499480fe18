"""A chat service over real RabbitMQ, moto server and the Chime emulator,
served by uvicorn once for the package, with a spy queue on chat's events.

The tests share one AppInstance; tests use their own user ids, so they do
not see each other's channels except through listings (which they filter)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session

from emulators.chime.control import EmulatorControl
from services.chat.bootstrap import Chat, definition
from services.chat.settings import ChatSettings
from shared.auth import mint_local_token
from shared.bus import EventBus, Subscription, create_bus
from shared.events import Envelope
from shared.service import create_platform_app, provided_by
from tests.support import isolated, serving, wait_until

CHAT_KEYS = (
    "chat.message_posted",
    "chat.user_mentioned",
    "chat.channel_joined",
    "chat.message_updated",
    "chat.message_deleted",
)


@dataclass
class ChatWorld:
    settings: ChatSettings
    base_url: str
    http: httpx.AsyncClient
    chat: Chat
    chime: EmulatorControl
    messaging: Any  # an aiobotocore chime-sdk-messaging client
    s3: Any
    bus: EventBus
    events: list[Envelope] = field(default_factory=list)

    def token(self, sub: str, *groups: str) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(self.settings, sub, groups)}"}

    def person(self, kind: str) -> str:
        return f"{kind}-{uuid.uuid4().hex[:8]}"

    def of(self, kind: str, **fields: Any) -> list[Any]:
        """Events of a type whose data has these values (envelopes, `Any` data)."""
        return [
            e
            for e in self.events
            if e.type == kind and all(getattr(e.data, k, None) == v for k, v in fields.items())
        ]

    async def wait_for(self, kind: str, count: int = 1, **fields: Any) -> list[Any]:
        await wait_until(
            lambda: len(self.of(kind, **fields)) >= count,
            timeout=10,
            message=f"{count} {kind} {fields}",
        )
        return self.of(kind, **fields)

    async def seen(self, user_id: str, role: str) -> None:
        """`user_id` calls chat once with a token of `role`: how chat learns a
        person's role when no user pool is configured (docs/chat.md, "Roles")."""
        response = await self.http.get("/chat/channels", headers=self.token(user_id, role))
        assert response.status_code == 200, response.text

    async def assign(self, customer: str, manager: str) -> dict[str, Any]:
        """An admin assigns `customer` (who has been seen as a customer) to
        `manager` (seen as a manager)."""
        await self.seen(customer, "customer")
        await self.seen(manager, "manager")
        response = await self.http.put(
            f"/chat/customers/{customer}/manager",
            json={"manager_id": manager},
            headers=self.token("admin-1", "admin"),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def channels(self, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Every channel the caller sees (all pages), by id."""
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        while True:
            params = {"cursor": cursor} if cursor else {}
            response = await self.http.get("/chat/channels", params=params, headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            found.update({c["channel_id"]: c for c in page["channels"]})
            cursor = page["next_cursor"]
            if not cursor:
                return found

    async def members(self, channel_arn: str) -> set[str]:
        view = await self.chime.channel(channel_arn)
        return set(view["members"])

    def arn(self, user_id: str) -> str:
        return self.chat.chime.user_arn(user_id)

    async def calls(self) -> dict[str, int]:
        return dict((await self.chime.counters())["calls"])


def chat_settings(
    amqp_url: str, moto_url: str, chime_url: str, test_id: str, **overrides: Any
) -> ChatSettings:
    """Settings whose queues, tables, AppInstance and bucket are `test_id`'s alone."""
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "aws_endpoint_url": moto_url,
        "chime_endpoint_url": chime_url,
        **isolated(test_id),
        "retry_delays_seconds": (0.05, 0.1),
        "log_level": "WARNING",
        "chat_app_instance_name": test_id,
        "chat_attachments_bucket": f"{test_id}-attachments",
    }
    return ChatSettings(**{**values, **overrides})


@pytest.fixture(scope="package")
async def world(amqp_url: str, moto_url: str, chime_url: str) -> AsyncIterator[ChatWorld]:
    test_id = f"chat{uuid.uuid4().hex[:8]}"
    settings = chat_settings(
        amqp_url,
        moto_url,
        chime_url,
        test_id,
        chat_max_attachment_bytes=64 * 1024,
        aws_max_attempts=2,
        chat_page_size=5,  # so that listings and history really page
    )
    spy = create_bus(settings, "spy")
    events: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        events.append(envelope)

    spy.subscribe(Subscription("spy.chat", CHAT_KEYS, record))
    app = create_platform_app([definition], settings={"chat": settings})
    session = get_session()
    async with (
        serving(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        EmulatorControl(chime_url) as control,
        session.create_client(
            "chime-sdk-messaging",
            endpoint_url=chime_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ) as msg,
        session.create_client(
            "s3",
            endpoint_url=moto_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ) as s3,
    ):
        await spy.start()
        try:
            yield ChatWorld(
                settings=settings,
                base_url=base_url,
                http=http,
                chat=provided_by(app, Chat),
                chime=control,
                messaging=msg,
                s3=s3,
                bus=spy,
                events=events,
            )
        finally:
            await spy.stop(1.0)
