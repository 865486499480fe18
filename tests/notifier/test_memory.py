"""The notifier on the in-process bus (the one-process `make run`), with moto
server and the Chime emulator: frames arrive, `room.updated` too, a lazy join
happens."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect

from services.notifier.bootstrap import definition
from services.notifier.settings import NotifierSettings
from shared.auth import mint_local_token
from shared.bus import MemoryBroker, create_bus
from shared.events import Producer, RoomUpdated
from shared.service import create_platform_app
from tests.notifier.conftest import Chat, World, ws_client, ws_url
from tests.support import serving


async def test_the_notifier_works_on_the_memory_bus(
    notifier_settings: Callable[..., NotifierSettings], world: World, chime: Any
) -> None:
    settings = notifier_settings(amqp_url="memory://")
    broker = MemoryBroker()
    app = create_platform_app([definition], settings={"notifier": settings}, memory_broker=broker)
    bus = create_bus(settings, "chat", memory_broker=broker)
    await bus.start()
    chat = Chat(bus, world)
    async with serving(app) as base:
        await chat.assign()
        async with (
            ws_client(base, settings, "m1", ["manager"]) as m1,
            ws_client(base, settings, "m2", ["manager"]) as m2,
        ):
            await chat.publish(chat.message("c1", "hello"))
            await chat.publish(chat.mention("m2", "m1"))
            await m1.wait_for(lambda f: any(x["type"] == "message.posted" for x in f))
            await m2.wait_for(
                lambda f: {"user.mentioned", "channel.joined"} <= {x["type"] for x in f}
            )
            assert m1.of("message.posted")[0]["data"]["content"] == "hello"
            assert m2.of("message.posted") == []  # not a member of c1's customer channel
            room = RoomUpdated(
                room_id="r1", title="Office hours", status="active", attendee_count=3, version=1
            )
            await bus.publish(Producer("rooms")(room))
            await m1.wait_for(lambda f: m1.rooms("r1") != [])
            await m2.wait_for(lambda f: m2.rooms("r1") != [])
            assert m1.rooms("r1") == m2.rooms("r1") == [room.model_dump(exclude={"version"})]
        # the token in a first frame instead of the query string
        token = mint_local_token(settings, "c1", ["customer"])
        async with connect(ws_url(base)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            ready = json.loads(await ws.recv())
            assert ready["type"] == "session.ready"
            assert ready["data"]["user_id"] == "c1"
    await bus.stop()
    channel = await chime.channel(world.managers_arn)
    assert world.arn("m2") in channel["members"]
    assert (await chime.counters())["calls"]["BatchCreateChannelMembership"] == 1
