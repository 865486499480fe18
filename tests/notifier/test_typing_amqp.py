"""Typing indicators over real RabbitMQ, moto server and the Chime emulator, on
two notifier replicas: a member's `typing` frame reaches the channel's other
members on both replicas, nobody else; a burst is one; never replayed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.notifier.bootstrap import definition
from services.notifier.settings import NotifierSettings
from shared.events import ChannelJoined
from shared.service import create_platform_app
from tests.notifier.conftest import Chat, Client, ws_client
from tests.support import serving, wait_until

pytestmark = pytest.mark.amqp

C1, MG1, C2 = "customer-c1", "managers-c1", "customer-c2"  # chat's channel ids


@contextlib.asynccontextmanager
async def notifier(settings: NotifierSettings) -> AsyncIterator[str]:
    app = create_platform_app([definition], settings={"notifier": settings})
    async with serving(app) as base:
        yield base


def outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("belfry_notifier_typing_total", {"outcome": outcome}) or 0.0


def typing_in(client: Client, channel_id: str, user_id: str | None = None) -> list[dict[str, Any]]:
    return [
        f["data"]
        for f in client.of("typing")
        if f["data"]["channel_id"] == channel_id and user_id in (None, f["data"]["user_id"])
    ]


async def typing(client: Client, channel_id: str, times: int = 1) -> None:
    for _ in range(times):
        await client.ws.send(json.dumps({"type": "typing", "channel_id": channel_id}))


async def memberships(chat: Chat) -> None:
    """customer-c1: c1, m1; managers-c1: m1, m2; customer-c2: c2, m1 (as chat
    announces them, with who may read each channel)."""
    arn = chat.world.customer_arn
    for channel, customer, kind, users in (
        (C1, "c1", "customer", ("c1", "m1")),
        (MG1, "c1", "managers", ("m1", "m2")),
        (C2, "c2", "customer", ("c2", "m1")),
    ):
        for user in users:
            await chat.publish(
                ChannelJoined(
                    channel_id=channel,
                    channel_arn=arn.replace("/channel/", f"/channel/{channel}-"),
                    user_id=user,
                    reason="assignment",
                    channel_kind=kind,
                    customer_id=customer,
                )
            )


def joined(client: Client, *channels: str) -> Callable[[list[dict[str, Any]]], bool]:
    def done(frames: list[dict[str, Any]]) -> bool:
        seen = {
            (f["data"]["channel_id"], f["data"]["user_id"])
            for f in frames
            if f["type"] == "channel.joined"
        }
        return all(any(c == channel for c, _ in seen) for channel in channels)

    return done


async def test_typing_reaches_the_other_members_on_every_replica_and_nobody_else(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, chat: Chat
) -> None:
    common = {"amqp_url": amqp_url, "notifier_members_cache_seconds": 0}
    one = notifier_settings(instance_id="typing-1", notifier_typing_interval_seconds=30, **common)
    two = notifier_settings(instance_id="typing-2", notifier_typing_interval_seconds=30, **common)
    async with (
        notifier(one) as base_one,
        notifier(two) as base_two,
        ws_client(base_one, one, "m1", ["manager"]) as m1,
        ws_client(base_two, two, "c1", ["customer"]) as c1,
        ws_client(base_two, two, "c2", ["customer"]) as c2,
        ws_client(base_two, two, "m2", ["manager"]) as m2,
        ws_client(base_one, one, "m1", ["manager"]) as m1_again,
    ):
        relayed = outcomes("relayed")
        await memberships(chat)
        await m1.wait_for(joined(m1, C1, MG1, C2))
        await c1.wait_for(joined(c1, C1))
        await c2.wait_for(joined(c2, C2))
        await m2.wait_for(joined(m2, MG1))

        # m1 (replica one) types to c1 (replica two): across replicas
        await typing(m1, C1)
        await c1.wait_for(lambda _: typing_in(c1, C1) == [{"channel_id": C1, "user_id": "m1"}])
        # then to c2 and to m2: sentinels behind the first on the same sessions;
        # c2 and m2 got nothing of customer-c1 (not members, or another customer)
        await typing(m1, C2)
        await typing(m1, MG1)
        await c2.wait_for(lambda _: bool(typing_in(c2, C2, "m1")))
        await m2.wait_for(lambda _: bool(typing_in(m2, MG1, "m1")))
        assert typing_in(c2, C1) == []
        assert typing_in(m2, C1) == []
        assert typing_in(c1, MG1) == []
        assert typing_in(c1, C2) == []
        # the typist's own sockets get nothing of it
        assert m1.of("typing") == []
        assert m1_again.of("typing") == []

        # a customer typing into another customer's channel (or a managers
        # channel) is refused: no relay, the socket stays open
        refused = outcomes("refused")
        await typing(c2, C1)
        await typing(c2, MG1)
        await wait_until(lambda: outcomes("refused") >= refused + 2, message="refused twice")
        await typing(c2, C2)  # and a frame that is relayed, from the same socket, after them
        await m1.wait_for(lambda _: bool(typing_in(m1, C2, "c2")))
        assert typing_in(m1, C1, "c2") == []
        assert typing_in(m1, MG1, "c2") == []
        assert typing_in(c1, C1, "c2") == []
        assert c2.closed is None

        # a burst: one relayed, the rest dropped (the interval is 30 s)
        await wait_until(lambda: outcomes("relayed") == relayed + 4, message="4 relayed")
        limited = outcomes("rate_limited")
        await typing(c1, C1, times=12)
        await wait_until(
            lambda: outcomes("rate_limited") == limited + 11, message="the burst dropped"
        )
        await m1.wait_for(lambda _: bool(typing_in(m1, C1, "c1")))
        await m1_again.wait_for(lambda _: bool(typing_in(m1_again, C1, "c1")))
        await wait_until(lambda: outcomes("relayed") == relayed + 5, message="one of 12")
        assert len(typing_in(m1, C1, "c1")) == 1

        # ephemeral: a session resuming from m1's first cursor replays the feed
        # (every row up to the head) and no typing frame
        first = str(m1.frames[0]["cursor"])
        async with ws_client(base_two, two, "m1", ["manager"], since=first) as resumed:
            head = resumed.frames[0]["data"]["head"]
            assert int(head) > int(first)
            await resumed.wait_for(lambda f: any(x.get("cursor") == head for x in f[1:]))
            assert resumed.of("typing") == []
            assert all("cursor" not in f for f in m1.of("typing"))
