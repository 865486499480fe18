"""A busy manager over real RabbitMQ and moto server: one person in many
channels whose messages two replicas append concurrently (their head item is
in every append), and a customer whose feed is written beside it. Every frame
once, cursors without a gap, and a resume with `?since=` that gets exactly the
rest."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from services.notifier.settings import NotifierSettings
from shared.events import ChannelJoined, Envelope, MessagePosted, utcnow
from tests.notifier.conftest import Chat, Client, ws_client
from tests.notifier.test_notifier_amqp import notifier

pytestmark = pytest.mark.amqp

CHANNELS = 30
PER_CHANNEL = 8
APP = "arn:aws:chime:us-east-1:123456789012:app-instance/busy"


def _message(channel: int, n: int) -> MessagePosted:
    return MessagePosted(
        message_id=uuid.uuid4().hex,
        channel_id=f"customer-cb{channel}",
        channel_arn=f"{APP}/channel/customer-cb{channel}",
        sender_id=f"cb{channel}",
        content=f"busy {channel}/{n}",
        posted_at=utcnow(),
        channel_kind="customer",
        customer_id=f"cb{channel}",
    )


def _posted(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"]["content"] for f in frames if f["type"] == "message.posted"]


def _contents(client: Client) -> list[str]:
    return _posted(client.frames)


def _feed_cursors(client: Client) -> list[int]:
    return [int(f["cursor"]) for f in client.frames[1:] if "cursor" in f]


async def test_a_manager_in_many_channels_gets_every_message_once_from_two_replicas(
    notifier_settings: Callable[..., NotifierSettings], amqp_url: str, chat: Chat
) -> None:
    one = notifier_settings(amqp_url=amqp_url, instance_id="busy-1")
    two = notifier_settings(amqp_url=amqp_url, instance_id="busy-2")
    async with (
        notifier(one) as base_one,
        notifier(two) as base_two,
        ws_client(base_one, one, "mb", ["manager"]) as manager,
        ws_client(base_two, two, "mb", ["manager"]) as manager_on_two,
        ws_client(base_two, two, "cb0", ["customer"]) as customer,
    ):
        for channel in range(CHANNELS):
            for user in (f"cb{channel}", "mb"):
                await chat.publish(
                    ChannelJoined(
                        channel_id=f"customer-cb{channel}",
                        channel_arn=f"{APP}/channel/customer-cb{channel}",
                        user_id=user,
                        reason="assignment",
                        channel_kind="customer",
                        customer_id=f"cb{channel}",
                    )
                )
        # both replicas have seen the joins (the other one's on its fan-out queue)
        for client in (manager, manager_on_two):
            await client.wait_for(
                lambda f: len([x for x in f if x["type"] == "channel.joined"]) >= CHANNELS
            )
        cursor = manager.cursor

        envelopes: list[Envelope] = [
            Envelope.new(_message(c, n), producer="chat")
            for n in range(PER_CHANNEL)
            for c in range(CHANNELS)
        ]
        # twenty at a time, and every fifth twice (a redelivery): both replicas
        # append to mb's feed concurrently
        burst = envelopes + envelopes[::5]
        for start in range(0, len(burst), 20):
            await asyncio.gather(*(chat.bus.publish(e) for e in burst[start : start + 20]))
        expected = sorted(f"busy {c}/{n}" for c in range(CHANNELS) for n in range(PER_CHANNEL))

        for client in (manager, manager_on_two):
            await client.wait_for(lambda f: len(_posted(f)) >= len(expected), timeout=60)
        await customer.wait_for(lambda f: len(_posted(f)) >= PER_CHANNEL, timeout=30)
        # give duplicates, if any were written, the time to show up
        await chat.publish(_message(0, 999))
        for client in (manager, manager_on_two, customer):
            await client.wait_for(lambda f: "busy 0/999" in _posted(f), timeout=30)

        for client in (manager, manager_on_two):
            got = [c for c in _contents(client) if c != "busy 0/999"]
            assert sorted(got) == expected  # every message once
            cursors = _feed_cursors(client)
            assert cursors == list(range(cursors[0], cursors[0] + len(cursors)))  # no gap
        assert sorted(_contents(customer)) == sorted(
            [f"busy 0/{n}" for n in range(PER_CHANNEL)] + ["busy 0/999"]
        )
        assert _feed_cursors(customer) == sorted(set(_feed_cursors(customer)))
        # which frames came after the cursor before the burst, as the manager saw them
        after: list[Any] = [
            f["data"]["content"]
            for f in manager.frames
            if f["type"] == "message.posted" and int(f["cursor"]) > int(cursor)
        ]

    async with (
        notifier(one) as base,
        ws_client(base, one, "mb", ["manager"], since=cursor) as again,
    ):
        await again.wait_for(lambda f: len(_posted(f)) >= len(after), timeout=30)
        assert _contents(again) == after  # the same frames, in the same order
        cursors = _feed_cursors(again)
        assert cursors[0] == int(cursor) + 1
        assert cursors == list(range(cursors[0], cursors[0] + len(cursors)))
