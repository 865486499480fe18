"""The messaging session: Chime's frames, to the channel's members only."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.emulator.world import World, new_channel

FRAME_TIMEOUT_S = 5.0


def session_url(endpoint: str, user_arn: str, *, signed: bool = True) -> str:
    """What a client builds from GetMessagingSessionEndpoint: ws://<Url>/connect?…, SigV4-signed."""
    query = urlencode({"userArn": user_arn, "sessionId": str(uuid.uuid4())})
    url = f"ws://{endpoint}/connect?{query}"
    if not signed:
        return url
    request = AWSRequest(method="GET", url=url.replace("ws://", "http://", 1))
    SigV4QueryAuth(Credentials("testing", "testing"), "chime", "us-east-1", 10).add_auth(request)
    return str(request.url).replace("http://", "ws://", 1)


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
    payload = frame["Payload"]
    return {**frame["Headers"], "payload": json.loads(payload) if payload else None}


@asynccontextmanager
async def sessions(endpoint: str, *users: str) -> AsyncIterator[list[ClientConnection]]:
    """Open one established messaging session per user."""
    async with AsyncExitStack() as stack:
        opened = []
        for user in users:
            ws = await stack.enter_async_context(connect(session_url(endpoint, user)))
            established = await next_frame(ws)
            assert established["x-amz-chime-event-type"] == "SESSION_ESTABLISHED"
            assert established["x-amz-chime-message-type"] == "SYSTEM"
            opened.append(ws)
        yield opened


@pytest.fixture
def endpoint(messaging: Any) -> str:
    return str(messaging.get_messaging_session_endpoint()["Endpoint"]["Url"])


async def assert_quiet(marker: Callable[[], str], *sockets: ClientConnection) -> None:
    """Nothing reached `sockets`: frames arrive in order, and the next one is a marker."""
    marker_id = marker()
    for ws in sockets:
        frame = await next_frame(ws)
        assert frame["payload"]["MessageId"] == marker_id, f"unexpected frame {frame}"


async def test_message_events_reach_members_only(
    messaging: Any, world: World, endpoint: str
) -> None:
    channel = new_channel(messaging, world, MemberArns=[world.bob])
    # carol and dana (an AppInstanceAdmin, not a member) share another channel.
    elsewhere = new_channel(messaging, world, by=world.carol, MemberArns=[world.dana])

    def marker() -> str:
        return str(
            messaging.send_channel_message(
                ChannelArn=elsewhere,
                Content="marker",
                Type="STANDARD",
                Persistence="PERSISTENT",
                ChimeBearer=world.carol,
            )["MessageId"]
        )

    async with sessions(endpoint, world.alice, world.bob, world.carol, world.dana) as (
        alice,
        bob,
        carol,
        dana,
    ):
        sent = messaging.send_channel_message(
            ChannelArn=channel,
            Content="hello bob",
            Metadata='{"mentions": []}',
            Type="STANDARD",
            Persistence="PERSISTENT",
            ChimeBearer=world.alice,
        )["MessageId"]
        for ws in (alice, bob):
            frame = await next_frame(ws)
            assert frame["x-amz-chime-event-type"] == "CREATE_CHANNEL_MESSAGE"
            assert frame["x-amz-chime-message-type"] == "STANDARD"
            payload = frame["payload"]
            assert payload["MessageId"] == sent
            assert payload["ChannelArn"] == channel
            assert payload["Content"] == "hello bob"
            assert payload["Metadata"] == '{"mentions": []}'
            assert payload["Sender"] == {"Arn": world.alice, "Name": "Alice"}
            assert payload["CreatedTimestamp"].endswith("Z")
        await assert_quiet(marker, carol, dana)

        messaging.update_channel_message(
            ChannelArn=channel, MessageId=sent, Content="hello, bob", ChimeBearer=world.alice
        )
        updated = await next_frame(bob)
        assert updated["x-amz-chime-event-type"] == "UPDATE_CHANNEL_MESSAGE"
        assert updated["payload"]["Content"] == "hello, bob"
        assert "LastEditedTimestamp" in updated["payload"]

        messaging.delete_channel_message(
            ChannelArn=channel, MessageId=sent, ChimeBearer=world.alice
        )
        deleted = await next_frame(bob)
        assert deleted["x-amz-chime-event-type"] == "DELETE_CHANNEL_MESSAGE"
        assert deleted["payload"]["MessageId"] == sent
        assert "Content" not in deleted["payload"]
        await assert_quiet(marker, carol, dana)


async def test_dana_needs_membership_for_events(
    messaging: Any, world: World, endpoint: str
) -> None:
    channel = new_channel(messaging, world)
    async with sessions(endpoint, world.dana) as (dana,):
        messaging.create_channel_membership(
            ChannelArn=channel, MemberArn=world.dana, Type="DEFAULT", ChimeBearer=world.dana
        )
        joined = await next_frame(dana)
        assert joined["x-amz-chime-event-type"] == "CREATE_CHANNEL_MEMBERSHIP"
        assert joined["payload"]["Member"]["Arn"] == world.dana
        sent = messaging.send_channel_message(
            ChannelArn=channel,
            Content="now you hear me",
            Type="STANDARD",
            Persistence="NON_PERSISTENT",
            ChimeBearer=world.alice,
        )["MessageId"]
        heard = await next_frame(dana)
        assert heard["payload"]["MessageId"] == sent
        assert heard["payload"]["Persistence"] == "NON_PERSISTENT"


async def test_membership_and_control_events(messaging: Any, world: World, endpoint: str) -> None:
    channel = new_channel(messaging, world)
    async with sessions(endpoint, world.alice, world.bob) as (alice, bob):
        messaging.create_channel_membership(
            ChannelArn=channel, MemberArn=world.bob, Type="DEFAULT", ChimeBearer=world.alice
        )
        for ws in (alice, bob):
            frame = await next_frame(ws)
            assert frame["x-amz-chime-event-type"] == "CREATE_CHANNEL_MEMBERSHIP"
            assert frame["x-amz-chime-message-type"] == "SYSTEM"
            assert frame["payload"]["ChannelArn"] == channel
            assert frame["payload"]["InvitedBy"]["Arn"] == world.alice

        messaging.send_channel_message(
            ChannelArn=channel,
            Content="typing",
            Type="CONTROL",
            Persistence="NON_PERSISTENT",
            ChimeBearer=world.bob,
        )
        for ws in (alice, bob):  # the sender hears its own messages too
            control = await next_frame(ws)
            assert control["x-amz-chime-message-type"] == "CONTROL"

        messaging.batch_create_channel_membership(
            ChannelArn=channel, MemberArns=[world.carol], ChimeBearer=world.alice
        )
        for ws in (alice, bob):
            batch = await next_frame(ws)
            assert batch["x-amz-chime-event-type"] == "BATCH_CREATE_CHANNEL_MEMBERSHIP"
            assert [m["Arn"] for m in batch["payload"]["Members"]] == [world.carol]

        messaging.delete_channel_membership(
            ChannelArn=channel, MemberArn=world.bob, ChimeBearer=world.alice
        )
        for ws in (alice, bob):
            left = await next_frame(ws)
            assert left["x-amz-chime-event-type"] == "DELETE_CHANNEL_MEMBERSHIP"
            assert left["payload"]["Member"]["Arn"] == world.bob

        messaging.delete_channel(ChannelArn=channel, ChimeBearer=world.alice)
        gone = await next_frame(alice)
        assert gone["x-amz-chime-event-type"] == "DELETE_CHANNEL"


async def test_targeted_messages_reach_sender_and_target_only(
    messaging: Any, world: World, endpoint: str
) -> None:
    channel = new_channel(messaging, world, MemberArns=[world.bob, world.carol])
    async with sessions(endpoint, world.bob, world.carol) as (bob, carol):
        messaging.send_channel_message(
            ChannelArn=channel,
            Content="for carol",
            Type="STANDARD",
            Persistence="PERSISTENT",
            Target=[{"MemberArn": world.carol}],
            ChimeBearer=world.alice,
        )
        assert (await next_frame(carol))["payload"]["Content"] == "for carol"
        public = messaging.send_channel_message(
            ChannelArn=channel,
            Content="for all",
            Type="STANDARD",
            Persistence="PERSISTENT",
            ChimeBearer=world.alice,
        )["MessageId"]
        assert (await next_frame(bob))["payload"]["MessageId"] == public
    listed = messaging.list_channel_messages(ChannelArn=channel, ChimeBearer=world.bob)
    assert [m["Content"] for m in listed["ChannelMessages"]] == ["for all"]


async def test_unsigned_urls_work_too(messaging: Any, world: World, endpoint: str) -> None:
    async with connect(session_url(endpoint, world.alice, signed=False)) as ws:
        assert (await next_frame(ws))["x-amz-chime-event-type"] == "SESSION_ESTABLISHED"


async def test_unknown_users_are_refused(endpoint: str, world: World) -> None:
    async with connect(session_url(endpoint, world.user("nobody"))) as ws:
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 4401


async def test_reset_closes_sessions(endpoint: str, world: World, control: Any) -> None:
    async with connect(session_url(endpoint, world.alice)) as ws:
        await next_frame(ws)
        assert await control.sessions() == {world.alice: 1}
        await control.reset()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)
