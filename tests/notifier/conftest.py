"""What the notifier's tests build on: settings over real RabbitMQ/moto/the
Chime emulator, a Chime AppInstance with two channels as chat would make them,
a stand-in for chat that publishes its events, and a WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.notifier.settings import NotifierSettings
from shared.auth import mint_local_token
from shared.aws import AwsClients
from shared.bus import EventBus, create_bus, instance_id
from shared.events import ChannelJoined, Envelope, EventData, MessagePosted, UserMentioned, utcnow
from shared.settings import BelfrySettings
from tests.support import drop_topology

CHAT_ADMIN = "belfry-chat-service"


@pytest.fixture
async def notifier_settings(
    make_settings: Callable[..., BelfrySettings], moto_url: str, chime_url: str
) -> AsyncIterator[Callable[..., NotifierSettings]]:
    """NotifierSettings isolated to this test; `amqp_url` decides the transport.
    The test's queues and exchanges are deleted afterwards."""
    made: list[NotifierSettings] = []

    def factory(**overrides: Any) -> NotifierSettings:
        base = make_settings(
            aws_endpoint_url=moto_url,
            chime_endpoint_url=chime_url,
            # long enough for a redelivery to outwait the first delivery's claim
            retry_delays_seconds=(0.2, 0.5, 1.0, 2.0),
        ).model_dump()
        base.update(overrides)
        made.append(NotifierSettings.model_validate(base))
        return made[-1]

    yield factory
    fanout = [f"notifier.fanout.{instance_id(s)}" for s in made]
    for settings in {s.queue_prefix: s for s in made}.values():
        await drop_topology(settings, *fanout, "probe.joined", "spy.mentions")


@dataclass
class World:
    """An AppInstance with chat's admin user, customer c1, managers m1 and m2,
    c1's customer channel (c1, m1) and managers channel (m1)."""

    app_instance_arn: str
    customer_arn: str
    managers_arn: str
    customer_channel: str = "ch-c1"
    managers_channel: str = "mg-c1"

    def arn(self, user_id: str) -> str:
        return f"{self.app_instance_arn}/user/{user_id}"


async def make_world(chime_url: str) -> World:
    settings = BelfrySettings(chime_endpoint_url=chime_url)
    async with AwsClients(settings, services=("chime-sdk-identity", "chime-sdk-messaging")) as aws:
        identity, messaging = aws.chime_identity, aws.chime_messaging
        app = (
            await identity.create_app_instance(
                Name=f"belfry-{uuid.uuid4().hex[:6]}", ClientRequestToken=uuid.uuid4().hex
            )
        )["AppInstanceArn"]
        for user in (CHAT_ADMIN, "c1", "m1", "m2", "m3"):
            await identity.create_app_instance_user(
                AppInstanceArn=app,
                AppInstanceUserId=user,
                Name=user,
                ClientRequestToken=f"user-{user}",
            )
        admin = f"{app}/user/{CHAT_ADMIN}"
        await identity.create_app_instance_admin(AppInstanceArn=app, AppInstanceAdminArn=admin)
        arns = []
        for name, members in (("customer-c1", ["c1", "m1"]), ("managers-c1", ["m1"])):
            arn = (
                await messaging.create_channel(
                    AppInstanceArn=app,
                    Name=name,
                    Mode="RESTRICTED",
                    Privacy="PRIVATE",
                    ClientRequestToken=uuid.uuid4().hex,
                    ChimeBearer=admin,
                )
            )["ChannelArn"]
            await messaging.batch_create_channel_membership(
                ChannelArn=arn, MemberArns=[f"{app}/user/{m}" for m in members], ChimeBearer=admin
            )
            arns.append(arn)
    return World(app, arns[0], arns[1])


@dataclass
class Chat:
    """Publishes what chat would, on the test's exchange."""

    bus: EventBus
    world: World

    async def publish(self, data: EventData, *, envelope: Envelope | None = None) -> Envelope:
        envelope = envelope or Envelope.new(data, producer="chat")
        await self.bus.publish(envelope)
        return envelope

    async def assign(self) -> None:
        """What an assignment of c1 to m1 announces."""
        w = self.world
        for channel, arn, users in (
            (w.customer_channel, w.customer_arn, ("c1", "m1")),
            (w.managers_channel, w.managers_arn, ("m1",)),
        ):
            for user in users:
                await self.publish(
                    ChannelJoined(
                        channel_id=channel, channel_arn=arn, user_id=user, reason="assignment"
                    )
                )

    def message(
        self, sender: str, content: str, *, managers: bool = False, **extra: Any
    ) -> MessagePosted:
        w = self.world
        return MessagePosted(
            message_id=uuid.uuid4().hex,
            channel_id=w.managers_channel if managers else w.customer_channel,
            channel_arn=w.managers_arn if managers else w.customer_arn,
            sender_id=sender,
            content=content,
            posted_at=utcnow(),
            channel_kind="managers" if managers else "customer",
            customer_id="c1",
            **extra,
        )

    def mention(self, of: str, by: str, *, managers: bool = True) -> UserMentioned:
        w = self.world
        return UserMentioned(
            mention_id=uuid.uuid4().hex,
            message_id=uuid.uuid4().hex,
            channel_id=w.managers_channel if managers else w.customer_channel,
            channel_arn=w.managers_arn if managers else w.customer_arn,
            mentioned_user_id=of,
            mentioned_by=by,
            excerpt=f"@{of} have a look",
            channel_kind="managers" if managers else "customer",
            customer_id="c1",
        )


@pytest.fixture
async def world(chime_url: str, chime: Any) -> World:
    made = await make_world(chime_url)
    await chime.reset_counters()
    return made


@pytest.fixture
async def chat(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, world: World
) -> AsyncIterator[Chat]:
    bus = create_bus(notifier_settings(amqp_url=amqp_url), "chat")
    await bus.start()
    try:
        yield Chat(bus, world)
    finally:
        await bus.stop()


@dataclass
class Client:
    """A WebSocket client of /notifications/ws that collects frames."""

    ws: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    closed: int | None = None
    _reader: asyncio.Task[None] | None = None

    def start(self) -> Client:
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                self.frames.append(json.loads(text))
        except ConnectionClosed:
            pass
        self.closed = self.ws.close_code

    def of(self, frame_type: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == frame_type]

    @property
    def cursor(self) -> str:
        """The cursor of the last feed frame (ephemeral frames carry none)."""
        return str([f for f in self.frames if "cursor" in f][-1]["cursor"])

    def rooms(self, room_id: str) -> list[dict[str, Any]]:
        """The `room.updated` data received for one room, in order."""
        return [
            f["data"]
            for f in self.frames
            if f["type"] == "room.updated" and f["data"]["room_id"] == room_id
        ]

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.frames):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"frames never matched; got {[f['type'] for f in self.frames]}"
                )
            if self.closed is not None:
                raise AssertionError(f"closed {self.closed}; got {self.frames}")
            await asyncio.sleep(0.02)

    async def wait_closed(self, timeout: float = 10.0) -> int:
        assert self._reader is not None
        await asyncio.wait_for(self._reader, timeout)
        assert self.closed is not None
        return self.closed

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


def ws_url(base: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return base.replace("http://", "ws://") + "/notifications/ws" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def ws_client(
    base: str, settings: BelfrySettings, user: str, groups: list[str], **params: str
) -> AsyncIterator[Client]:
    token = mint_local_token(settings, user, groups)
    async with connect(ws_url(base, token=token, **params), max_queue=None) as ws:
        client = Client(ws).start()
        await client.wait_for(bool)
        assert client.frames[0]["type"] == "session.ready"
        try:
            yield client
        finally:
            await client.close()
