"""The chat story end to end: chat and the notifier in one app over real
RabbitMQ, moto server and the Chime emulator, clients on real WebSockets.

c1 is assigned to m1; c1 posts with an attachment and a mention of m1, and m1
gets both frames live. m1 then mentions m2 in the managers' channel: m2 is
added to the Chime channel with one membership call, even though the mention
is delivered twice, and gets the frames and one inbox entry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.chat.bootstrap import definition as chat_definition
from services.chat.settings import ChatSettings
from services.notifier.bootstrap import definition as notifier_definition
from services.notifier.settings import NotifierSettings
from shared.auth import mint_local_token
from shared.bus import Subscription, create_bus, instance_id
from shared.events import Envelope
from shared.service import create_platform_app
from shared.settings import BelfrySettings
from tests.notifier.conftest import ws_client
from tests.support import drop_topology, serving, wait_until

pytestmark = pytest.mark.amqp


@pytest.fixture
async def common(
    make_settings: Callable[..., BelfrySettings], amqp_url: str, moto_url: str, chime_url: str
) -> AsyncIterator[dict[str, Any]]:
    """Settings both services share: this test's broker names, moto, the emulator.
    The test's queues and exchanges are deleted afterwards."""
    settings = make_settings(
        amqp_url=amqp_url,
        aws_endpoint_url=moto_url,
        chime_endpoint_url=chime_url,
        retry_delays_seconds=(0.2, 0.5, 1.0, 2.0),
    )
    yield settings.model_dump()
    await drop_topology(settings, f"notifier.fanout.{instance_id(settings)}", "spy.mentions")


async def test_customer_manager_chat_with_mentions_and_a_lazy_join(
    common: dict[str, Any], test_id: str, chime: Any
) -> None:
    chat_settings = ChatSettings.model_validate(
        {**common, "chat_app_instance_name": test_id, "chat_attachments_bucket": f"{test_id}-att"}
    )
    notifier_settings = NotifierSettings.model_validate(common)
    suffix = uuid.uuid4().hex[:6]
    c1, m1, m2 = f"c1-{suffix}", f"m1-{suffix}", f"m2-{suffix}"

    mentions: list[Envelope] = []

    async def spy(envelope: Envelope) -> None:
        mentions.append(envelope)

    spy_bus = create_bus(chat_settings, "spy")
    spy_bus.subscribe(Subscription("spy.mentions", ("chat.user_mentioned",), spy))
    await spy_bus.start()

    def auth(user: str, group: str) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(chat_settings, user, [group])}"}

    app = create_platform_app(
        [chat_definition, notifier_definition],
        settings={"chat": chat_settings, "notifier": notifier_settings},
    )
    try:
        async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
            for who, group in ((c1, "customer"), (m1, "manager")):  # chat learns their roles
                seen = await http.get("/chat/channels", headers=auth(who, group))
                assert seen.status_code == 200, seen.text
            assigned = await http.put(
                f"/chat/customers/{c1}/manager",
                json={"manager_id": m1},
                headers=auth("admin-1", "admin"),
            )
            assert assigned.status_code == 200, assigned.text
            customer_channel = assigned.json()["customer_channel"]["channel_id"]
            managers_channel = assigned.json()["managers_channel"]
            assert (
                await http.get("/chat/channels", headers=auth(m2, "manager"))
            ).status_code == 200

            async with ws_client(base, notifier_settings, m1, ["manager"]) as m1_ws:
                upload = await http.post(
                    "/chat/attachments",
                    files={"file": ("notes.txt", b"hello from c1", "text/plain")},
                    headers=auth(c1, "customer"),
                )
                assert upload.status_code == 201, upload.text
                attachment_id = upload.json()["attachment_id"]
                posted = await http.post(
                    f"/chat/channels/{customer_channel}/messages",
                    json={
                        "content": f"@{m1} see the notes",
                        "mentions": [m1],
                        "attachment_ids": [attachment_id],
                    },
                    headers=auth(c1, "customer"),
                )
                assert posted.status_code == 201, posted.text
                message_id = posted.json()["message_id"]

                await m1_ws.wait_for(
                    lambda f: (
                        any(
                            x["type"] == "message.posted" and x["data"]["message_id"] == message_id
                            for x in f
                        )
                        and any(x["type"] == "user.mentioned" for x in f)
                    )
                )
                message = next(
                    x["data"]
                    for x in m1_ws.of("message.posted")
                    if x["data"]["message_id"] == message_id
                )
                assert message["sender_id"] == c1
                assert [a["attachment_id"] for a in message["attachments"]] == [attachment_id]
                assert m1_ws.of("user.mentioned")[0]["data"]["message_id"] == message_id

            await chime.reset_counters()
            async with ws_client(base, notifier_settings, m2, ["manager"]) as m2_ws:
                posted = await http.post(
                    f"/chat/channels/{managers_channel['channel_id']}/messages",
                    json={"content": f"@{m2} can you take over?", "mentions": [m2]},
                    headers=auth(m1, "manager"),
                )
                assert posted.status_code == 201, posted.text
                await wait_until(
                    lambda: any(e.data.mentioned_user_id == m2 for e in mentions),  # type: ignore[attr-defined]
                    message="chat's UserMentioned",
                )
                mention = next(e for e in mentions if e.data.mentioned_user_id == m2)  # type: ignore[attr-defined]
                await spy_bus.publish(mention)  # the same event delivered again

                await m2_ws.wait_for(
                    lambda f: (
                        {"user.mentioned", "channel.joined", "message.posted"}
                        <= {x["type"] for x in f}
                    )
                )
                channel = await chime.channel(managers_channel["channel_arn"])
                assert any(arn.endswith(f"/user/{m2}") for arn in channel["members"])

                async def inbox() -> dict[str, Any]:
                    page = await http.get("/notifications/mentions", headers=auth(m2, "manager"))
                    assert page.status_code == 200, page.text
                    body: dict[str, Any] = page.json()
                    return body

                page = await inbox()
                assert page["unread_count"] == 1
                assert [m["mention_id"] for m in page["mentions"]] == [mention.data.mention_id]  # type: ignore[attr-defined]

                # a later post: anything a duplicate had added would come before it
                later = await http.post(
                    f"/chat/channels/{managers_channel['channel_id']}/messages",
                    json={"content": "thanks"},
                    headers=auth(m1, "manager"),
                )
                assert later.status_code == 201, later.text
                await m2_ws.wait_for(lambda f: any(x["data"].get("content") == "thanks" for x in f))
                assert len(m2_ws.of("user.mentioned")) == 1
                joins = [
                    x["data"] for x in m2_ws.of("channel.joined") if x["data"]["user_id"] == m2
                ]
                assert [j["reason"] for j in joins] == ["mention"]
                calls = (await chime.counters())["calls"]
                assert calls.get("BatchCreateChannelMembership", 0) == 1
                assert calls.get("CreateChannelMembership", 0) == 0
                assert (await inbox())["unread_count"] == 1
    finally:
        await spy_bus.stop()
