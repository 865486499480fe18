"""The notifier over real RabbitMQ, moto server and the Chime emulator: lazy
joins exactly once, the mention inbox, and the WebSocket feed (replay, resume,
two replicas, auth)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.notifier.bootstrap import definition
from services.notifier.settings import NotifierSettings
from shared.auth import mint_local_token
from shared.bus import Subscription, create_bus
from shared.events import Envelope
from shared.service import create_platform_app
from tests.notifier.conftest import Chat, World, ws_client, ws_url
from tests.support import serving, wait_until

pytestmark = pytest.mark.amqp


def consumed(queue: str, event_type: str) -> float:
    value = REGISTRY.get_sample_value(
        "belfry_bus_consumed_total",
        {"component": "notifier", "queue": queue, "event_type": event_type, "outcome": "ok"},
    )
    return value or 0.0


@contextlib.asynccontextmanager
async def notifier(settings: NotifierSettings) -> AsyncIterator[str]:
    app = create_platform_app([definition], settings={"notifier": settings})
    async with serving(app) as base:
        yield base


def bearer(settings: NotifierSettings, user: str, groups: list[str]) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_local_token(settings, user, groups)}"}


async def test_a_mention_delivered_twice_joins_once_and_lands_once(
    notifier_settings: Callable[..., NotifierSettings],
    amqp_url: str,
    chat: Chat,
    world: World,
    chime: Any,
) -> None:
    settings = notifier_settings(amqp_url=amqp_url)
    joined: list[Envelope] = []

    async def probe(envelope: Envelope) -> None:
        joined.append(envelope)

    watcher = create_bus(settings, "probe")
    watcher.subscribe(Subscription("probe.joined", ("chat.channel_joined",), probe))
    await watcher.start()
    try:
        async with notifier(settings) as base:
            await chat.assign()
            async with ws_client(base, settings, "m2", ["manager"]) as m2:
                before = consumed("notifier.mentions", "UserMentioned")
                mention = chat.mention("m2", "m1")
                envelope = await chat.publish(mention)
                await chat.publish(mention, envelope=envelope)  # the same event again

                await m2.wait_for(lambda f: any(x["type"] == "channel.joined" for x in f))
                await m2.wait_for(lambda f: any(x["type"] == "user.mentioned" for x in f))
                await wait_until(
                    lambda: consumed("notifier.mentions", "UserMentioned") >= before + 2,
                    message="both deliveries handled",
                )
                # a later message in the channel: m2, now a member, gets it after
                # anything a duplicate could have added to the feed
                await chat.publish(chat.message("m1", "welcome m2", managers=True))
                await m2.wait_for(lambda f: any(x["type"] == "message.posted" for x in f))

                counters = await chime.counters()
                assert counters["calls"].get("BatchCreateChannelMembership") == 1
                channel = await chime.channel(world.managers_arn)
                assert world.arn("m2") in channel["members"]
                assert [f["type"] for f in m2.frames[1:]].count("user.mentioned") == 1
                joins = [f["data"] for f in m2.of("channel.joined")]
                assert [j["reason"] for j in joins if j["user_id"] == "m2"] == ["mention"]
                mentioned = m2.of("user.mentioned")[0]["data"]
                assert mentioned["mention_id"] == mention.mention_id
                assert mentioned["mentioned_by"] == "m1"

                async with httpx.AsyncClient(base_url=base) as http:
                    page = await http.get(
                        "/notifications/mentions",
                        params={"unread": "true"},
                        headers=bearer(settings, "m2", ["manager"]),
                    )
                assert page.status_code == 200, page.text
                body = page.json()
                assert body["unread_count"] == 1
                assert [m["mention_id"] for m in body["mentions"]] == [mention.mention_id]

            await wait_until(
                lambda: any(e.data.reason == "mention" for e in joined),  # type: ignore[attr-defined]
                message="ChannelJoined(mention)",
            )
            by_mention = [e for e in joined if getattr(e.data, "reason", "") == "mention"]
            assert len(by_mention) == 1
            assert by_mention[0].data.user_id == "m2"  # type: ignore[attr-defined]
            assert by_mention[0].producer == "notifier"
    finally:
        await watcher.stop()


async def test_a_client_that_reconnects_with_its_cursor_misses_nothing_and_sees_nothing_twice(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, chat: Chat
) -> None:
    settings = notifier_settings(amqp_url=amqp_url)
    async with notifier(settings) as base:
        await chat.assign()
        async with ws_client(base, settings, "m1", ["manager"]) as first:
            for i in range(3):
                await chat.publish(chat.message("c1", f"before {i}"))
            await first.wait_for(lambda f: len(f) >= 4)
            # the assignment's joins may come first: keep the cursor of what we saw
            seen = [f["data"].get("content") for f in first.frames if f["type"] == "message.posted"]
            cursor = first.cursor
        for i in range(4):
            await chat.publish(chat.message("c1", f"while away {i}"))
        async with ws_client(base, settings, "m1", ["manager"], since=cursor) as again:
            await chat.publish(chat.message("c1", "after"))

            def contents(frames: list[dict[str, Any]]) -> list[str]:
                return [f["data"]["content"] for f in frames if f["type"] == "message.posted"]

            await again.wait_for(lambda f: "after" in contents(f))
            everything = seen + contents(again.frames)
            expected = [f"before {i}" for i in range(3)]
            expected += [f"while away {i}" for i in range(4)] + ["after"]
            assert sorted(everything) == sorted(expected)  # nothing missed, nothing twice
            cursors = [int(f["cursor"]) for f in again.frames[1:]]
            assert cursors == sorted(set(cursors))
            assert cursors[0] == int(cursor) + 1


async def test_two_replicas_each_push_to_their_own_clients(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, chat: Chat
) -> None:
    # A join reaches the other replica's member list within the cache's
    # lifetime (docs/notifier.md); without the cache the test need only wait
    # until the assignment's joins are applied before chat posts.
    one = notifier_settings(
        amqp_url=amqp_url, instance_id="replica-1", notifier_members_cache_seconds=0
    )
    two = notifier_settings(
        amqp_url=amqp_url, instance_id="replica-2", notifier_members_cache_seconds=0
    )
    async with (
        notifier(one) as base_one,
        notifier(two) as base_two,
        ws_client(base_one, one, "m1", ["manager"]) as m1,
        ws_client(base_two, two, "c1", ["customer"]) as c1,
        ws_client(base_two, two, "m1", ["manager"]) as m1_on_two,
    ):
        await chat.assign()
        for manager in (m1, m1_on_two):
            await manager.wait_for(
                lambda f: (
                    {x["data"]["channel_id"] for x in f if x["type"] == "channel.joined"}
                    == {chat.world.customer_channel, chat.world.managers_channel}
                )
            )
        for i in range(5):
            await chat.publish(chat.message("c1", f"hello {i}"))
        for client in (m1, c1, m1_on_two):
            await client.wait_for(
                lambda f: len([x for x in f if x["type"] == "message.posted"]) == 5
            )
            contents = [f["data"]["content"] for f in client.of("message.posted")]
            assert sorted(contents) == [f"hello {i}" for i in range(5)]


async def test_customers_see_only_their_channel_and_auth_is_required(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, chat: Chat
) -> None:
    settings = notifier_settings(amqp_url=amqp_url)
    async with notifier(settings) as base:
        # no token, a bad token: closed 4401 after the handshake
        for url in (ws_url(base), ws_url(base, token="not-a-jwt")):
            async with connect(url) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4401
        # a malformed cursor
        token = mint_local_token(settings, "c1", ["customer"])
        async with connect(ws_url(base, token=token, since="nope")) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4400
        with pytest.raises(InvalidStatus):
            async with connect(base.replace("http://", "ws://") + "/notifications/nope"):
                pass

        await chat.assign()
        async with ws_client(base, settings, "c1", ["customer"]) as c1:
            # m1 talks about c1 in the managers' channel; even a wrong membership
            # view must not leak it (the frame is checked against the reader)
            await chat.publish(
                chat.message("m1", "between managers", managers=True, mentions=["c1"])
            )
            await chat.publish(chat.message("m1", "hello c1"))
            await c1.wait_for(lambda f: any(x["type"] == "message.posted" for x in f))
            contents = [f["data"]["content"] for f in c1.of("message.posted")]
            assert contents == ["hello c1"]

        mention = chat.mention("m1", "m3")
        await chat.publish(mention)
        async with httpx.AsyncClient(base_url=base) as http:
            m1 = bearer(settings, "m1", ["manager"])
            await wait_until(
                lambda: _unread(http, m1, 1), message="the mention in m1's inbox", timeout=15
            )
            assert (await http.get("/notifications/mentions")).status_code == 401
            other = await http.post(
                f"/notifications/mentions/{mention.mention_id}/read",
                headers=bearer(settings, "m2", ["manager"]),
            )
            assert other.status_code == 404
            assert other.json()["error"]["code"] == "mention_not_found"
            mine = await http.post(f"/notifications/mentions/{mention.mention_id}/read", headers=m1)
            assert mine.status_code == 204
            page = (await http.get("/notifications/mentions", headers=m1)).json()
            assert page["unread_count"] == 0
            assert page["mentions"][0]["read"] is True
            unread = (
                await http.get("/notifications/mentions", params={"unread": "true"}, headers=m1)
            ).json()
            assert unread == {"mentions": [], "unread_count": 0, "next_cursor": None}
            bad = await http.get("/notifications/mentions", params={"cursor": "!!"}, headers=m1)
            assert bad.status_code == 400


async def _unread(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> bool:
    response = await http.get("/notifications/mentions", params={"unread": "true"}, headers=headers)
    return response.status_code == 200 and response.json()["unread_count"] == count
