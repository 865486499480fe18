"""Read state end to end over RabbitMQ, moto server and the Chime emulator: two
chat replicas sharing one set of tables (one of them also runs the notifier),
unread counts and mentions, the listing's order and pages, Chime's read
marker, the `channel.read` frame, and the errors of POST .../read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session

from services.chat.bootstrap import Chat
from services.chat.bootstrap import definition as chat_definition
from services.chat.settings import ChatSettings
from services.notifier.bootstrap import definition as notifier_definition
from services.notifier.settings import NotifierSettings
from shared.auth import mint_local_token
from shared.bus import instance_id
from shared.service import create_platform_app, provided_by
from tests.chat.conftest import chat_settings
from tests.notifier.conftest import ws_client
from tests.support import drop_topology, serving

pytestmark = pytest.mark.amqp


@dataclass
class Replicas:
    settings: ChatSettings
    a: httpx.AsyncClient  # chat + notifier
    b: httpx.AsyncClient  # chat only, the same tables
    a_url: str
    chat: Chat
    messaging: Any
    app_b: Any

    def token(self, sub: str, *groups: str) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(self.settings, sub, groups)}"}

    async def assign(self, customer: str, manager: str) -> dict[str, Any]:
        for who, role in ((customer, "customer"), (manager, "manager")):
            seen = await self.a.get("/chat/channels", headers=self.token(who, role))
            assert seen.status_code == 200, seen.text
        response = await self.a.put(
            f"/chat/customers/{customer}/manager",
            json={"manager_id": manager},
            headers=self.token("admin-1", "admin"),
        )
        assert response.status_code == 200, response.text
        return dict(response.json()["customer_channel"])

    async def post(
        self, http: httpx.AsyncClient, channel_id: str, who: dict[str, str], text: str, **extra: Any
    ) -> str:
        response = await http.post(
            f"/chat/channels/{channel_id}/messages", json={"content": text, **extra}, headers=who
        )
        assert response.status_code == 201, response.text
        return str(response.json()["message_id"])

    async def listing(self, http: httpx.AsyncClient, who: dict[str, str]) -> list[dict[str, Any]]:
        """Every page, in order."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"cursor": cursor} if cursor else {}
            response = await http.get("/chat/channels", params=params, headers=who)
            assert response.status_code == 200, response.text
            page = response.json()
            found += page["channels"]
            cursor = page["next_cursor"]
            if not cursor:
                return found

    async def item(self, http: httpx.AsyncClient, who: dict[str, str], channel_id: str) -> Any:
        return next(c for c in await self.listing(http, who) if c["channel_id"] == channel_id)

    async def read(
        self, http: httpx.AsyncClient, channel_id: str, who: dict[str, str], up_to: str
    ) -> httpx.Response:
        return await http.post(
            f"/chat/channels/{channel_id}/read", json={"up_to": up_to}, headers=who
        )


@pytest.fixture(scope="module")
async def replicas(amqp_url: str, moto_url: str, chime_url: str) -> AsyncIterator[Replicas]:
    test_id = f"read{uuid.uuid4().hex[:8]}"
    settings = chat_settings(amqp_url, moto_url, chime_url, test_id, chat_page_size=2)
    notifier = NotifierSettings.model_validate(settings.model_dump())
    app_a = create_platform_app(
        [chat_definition, notifier_definition], settings={"chat": settings, "notifier": notifier}
    )
    app_b = create_platform_app([chat_definition], settings={"chat": settings})
    try:
        async with (
            serving(app_a) as a_url,
            serving(app_b) as b_url,
            httpx.AsyncClient(base_url=a_url, timeout=30) as a,
            httpx.AsyncClient(base_url=b_url, timeout=30) as b,
            get_session().create_client(
                "chime-sdk-messaging",
                endpoint_url=chime_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ) as messaging,
        ):
            yield Replicas(settings, a, b, a_url, provided_by(app_a, Chat), messaging, app_b)
    finally:
        await drop_topology(settings, f"notifier.fanout.{instance_id(notifier)}")


def person(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


async def test_unread_counts_rise_with_posts_and_fall_with_marks_on_either_replica(
    replicas: Replicas,
) -> None:
    r = replicas
    c, m = person("c"), person("m")
    channel = (await r.assign(c, m))["channel_id"]
    customer, manager = r.token(c, "customer"), r.token(m, "manager")
    assert (await r.item(r.b, manager, channel))["unread_count"] == 0
    assert (await r.item(r.b, manager, channel))["last_message"] is None

    ids = [await r.post(r.a, channel, customer, f"hello {n}") for n in range(3)]
    seen = await r.item(r.b, manager, channel)  # posted through A, listed through B
    assert seen["unread_count"] == 3
    assert seen["unread_mentions"] == 0
    assert seen["last_message"]["message_id"] == ids[2]
    assert seen["last_message"]["excerpt"] == "hello 2"
    assert seen["last_message"]["sender_id"] == c
    assert (await r.item(r.a, customer, channel))["unread_count"] == 0  # one's own posts

    assert (await r.read(r.b, channel, manager, ids[1])).status_code == 204
    assert (await r.item(r.a, manager, channel))["unread_count"] == 1
    assert (await r.read(r.a, channel, manager, ids[2])).status_code == 204
    assert (await r.item(r.b, manager, channel))["unread_count"] == 0
    # an older mark is ignored (still 204)
    assert (await r.read(r.b, channel, manager, ids[0])).status_code == 204
    assert (await r.item(r.b, manager, channel))["unread_count"] == 0

    # the manager replies through B: the customer has one unread, through A
    await r.post(r.b, channel, manager, "hi back")
    assert (await r.item(r.a, customer, channel))["unread_count"] == 1
    assert (await r.item(r.a, manager, channel))["unread_count"] == 0

    # Chime's read marker of the manager is set (the emulator, over HTTP)
    arn = r.chat.chime.user_arn(m)
    listed = await r.messaging.list_channel_memberships_for_app_instance_user(
        AppInstanceUserArn=arn, ChimeBearer=arn
    )
    [ours] = [
        row
        for row in listed["ChannelMemberships"]
        if row["ChannelSummary"]["ChannelArn"].endswith("/" + channel)
    ]
    assert "ReadMarkerTimestamp" in ours["AppInstanceUserMembershipSummary"]


async def test_mentions_count_until_read(replicas: Replicas) -> None:
    r = replicas
    c, m = person("c"), person("m")
    channel = (await r.assign(c, m))["channel_id"]
    customer, manager = r.token(c, "customer"), r.token(m, "manager")
    await r.post(r.a, channel, customer, "plain")
    first = await r.post(r.a, channel, customer, "@m look", mentions=[m])
    last = await r.post(r.b, channel, customer, "@m and this", mentions=[m])
    seen = await r.item(r.a, manager, channel)
    assert (seen["unread_count"], seen["unread_mentions"]) == (3, 2)
    assert (await r.read(r.b, channel, manager, first)).status_code == 204
    seen = await r.item(r.a, manager, channel)
    assert (seen["unread_count"], seen["unread_mentions"]) == (1, 1)
    assert (await r.read(r.a, channel, manager, last)).status_code == 204
    seen = await r.item(r.b, manager, channel)
    assert (seen["unread_count"], seen["unread_mentions"]) == (0, 0)


async def test_the_list_is_sorted_by_last_activity_and_pages(replicas: Replicas) -> None:
    r = replicas
    m = person("m")
    customers = [person("c") for _ in range(3)]
    channels = [(await r.assign(c, m))["channel_id"] for c in customers]
    for index in (2, 0, 1):  # activity: channel 1 newest, then 0, then 2
        await r.post(r.a, channels[index], r.token(customers[index], "customer"), "news")
    listed = await r.listing(r.b, r.token(m, "manager"))  # pages of 2
    order = [c["channel_id"] for c in listed]
    assert len(order) == len(set(order))  # no channel twice across pages
    assert [c for c in order if c in channels] == [channels[1], channels[0], channels[2]]
    activity = [c["last_message"]["message_id"] for c in listed if c["last_message"]]
    assert activity == sorted(activity, reverse=True)
    mine = [c for c in listed if c["channel_id"] in channels]
    assert all(c["is_member"] for c in mine)
    # the customer sees their one channel
    own = await r.listing(r.a, r.token(customers[0], "customer"))
    assert [c["channel_id"] for c in own] == [channels[0]]
    assert own[0]["unread_count"] == 0


async def test_a_read_mark_reaches_the_readers_other_sessions(replicas: Replicas) -> None:
    r = replicas
    c, m = person("c"), person("m")
    channel = (await r.assign(c, m))["channel_id"]
    customer = r.token(c, "customer")
    first = await r.post(r.a, channel, customer, "one")
    await r.post(r.a, channel, customer, "two")
    async with (
        ws_client(r.a_url, r.settings, m, ["manager"]) as other,
        ws_client(r.a_url, r.settings, c, ["customer"]) as customer_socket,
    ):
        # read on replica B; the notifier (with A) tells the manager's session
        assert (await r.read(r.b, channel, r.token(m, "manager"), first)).status_code == 204
        await other.wait_for(lambda frames: any(f["type"] == "channel.read" for f in frames))
        [frame] = other.of("channel.read")
        assert frame["data"]["channel_id"] == channel
        assert frame["data"]["up_to"] == first
        assert frame["data"]["unread_count"] == 1
        assert frame["data"]["user_id"] == m
        assert "cursor" in frame  # a feed row: resumable with ?since=
        # the customer's own marks are theirs: nothing of the manager's reached them
        await r.post(r.a, channel, r.token(m, "manager"), "from the manager")
        await customer_socket.wait_for(lambda fs: any(f["type"] == "message.posted" for f in fs))
        assert customer_socket.of("channel.read") == []


async def test_a_deleted_last_message_shows_as_deleted(replicas: Replicas) -> None:
    r = replicas
    c, m = person("c"), person("m")
    channel = (await r.assign(c, m))["channel_id"]
    customer = r.token(c, "customer")
    older = await r.post(r.a, channel, customer, "older")
    last = await r.post(r.a, channel, customer, "oops")
    deleted = await r.a.delete(f"/chat/channels/{channel}/messages/{older}", headers=customer)
    assert deleted.status_code == 204  # not the last one: the listing keeps showing "oops"
    shown = (await r.item(r.b, r.token(m, "manager"), channel))["last_message"]
    assert (shown["message_id"], shown["excerpt"], shown["deleted"]) == (last, "oops", False)
    deleted = await r.a.delete(f"/chat/channels/{channel}/messages/{last}", headers=customer)
    assert deleted.status_code == 204
    shown = (await r.item(r.b, r.token(m, "manager"), channel))["last_message"]
    assert shown["message_id"] == last
    assert (shown["excerpt"], shown["deleted"]) == (None, True)


async def test_read_marks_refuse_bad_input_and_other_peoples_channels(replicas: Replicas) -> None:
    r = replicas
    c1, c2, m = person("c"), person("c"), person("m")
    mine = (await r.assign(c1, m))["channel_id"]
    theirs = (await r.assign(c2, m))["channel_id"]
    own, other = r.token(c1, "customer"), r.token(c2, "customer")
    message = await r.post(r.a, mine, own, "mine")
    their_message = await r.post(r.a, theirs, other, "theirs")

    refused = await r.read(r.a, theirs, own, their_message)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "channel_not_found"
    unknown = await r.read(r.a, "no-such-channel", own, message)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "channel_not_found"
    elsewhere = await r.read(r.a, mine, own, their_message)  # a message of another channel
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"]["code"] == "message_not_found"
    missing = await r.a.post(f"/chat/channels/{mine}/read", json={}, headers=own)
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "validation_error"
    broken = await r.a.post(
        f"/chat/channels/{mine}/read",
        content=b"{not json",
        headers={**own, "content-type": "application/json"},
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    # none of these moved anything: c2 still has nothing unread of their own post
    assert (await r.item(r.a, other, theirs))["unread_count"] == 0
