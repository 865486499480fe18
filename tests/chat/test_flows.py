"""chat end to end over RabbitMQ, moto (DynamoDB, S3) and the Chime emulator."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.events import ChannelJoined, Envelope
from tests.chat.conftest import ChatWorld
from tests.support import wait_until

pytestmark = pytest.mark.amqp


async def test_assignment_makes_users_channels_and_memberships(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    body = await world.assign(c1, m1)
    customer_channel, managers_channel = body["customer_channel"], body["managers_channel"]
    assert customer_channel["kind"] == "customer"
    assert managers_channel["kind"] == "managers"
    service = world.chat.chime.service_user_arn
    assert await world.members(customer_channel["channel_arn"]) == {
        service,
        world.arn(c1),
        world.arn(m1),
    }
    assert await world.members(managers_channel["channel_arn"]) == {service, world.arn(m1)}
    joined = await world.wait_for("ChannelJoined", 3, reason="assignment")
    assert {(e.data.channel_id, e.data.user_id) for e in joined} >= {
        (customer_channel["channel_id"], c1),
        (customer_channel["channel_id"], m1),
        (managers_channel["channel_id"], m1),
    }

    # the same request again: the same channels, no Chime writes, no events
    before = await world.calls()
    again = await world.assign(c1, m1)
    assert again["customer_channel"] == customer_channel
    assert again["managers_channel"] == managers_channel
    after = await world.calls()
    assert after.get("CreateChannel", 0) == before.get("CreateChannel", 0)
    assert after.get("CreateChannelMembership", 0) == before.get("CreateChannelMembership", 0)
    assert len(world.of("ChannelJoined", user_id=c1)) == 1


async def test_a_customer_posts_with_an_attachment_and_a_mention(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    customer = world.token(c1, "customer")

    upload = await world.http.post(
        "/chat/attachments",
        files={"file": ("../../etc/report.pdf", b"%PDF-1.4 hello", "application/pdf")},
        headers=customer,
    )
    assert upload.status_code == 201, upload.text
    attachment = upload.json()
    assert attachment["name"] == "report.pdf"
    assert attachment["key"] == f"attachments/{attachment['attachment_id']}"
    stored = await world.s3.get_object(
        Bucket=world.settings.chat_attachments_bucket, Key=attachment["key"]
    )
    assert await stored["Body"].read() == b"%PDF-1.4 hello"

    posted = await world.http.post(
        f"/chat/channels/{channel['channel_id']}/messages",
        json={
            "content": "hello @m1, see the report",
            "mentions": [m1],
            "attachment_ids": [attachment["attachment_id"]],
        },
        headers=customer,
    )
    assert posted.status_code == 201, posted.text
    message = posted.json()
    assert message["mentions"] == [m1]
    assert message["attachments"] == [attachment]

    # Chime has it, sent as the customer, with the references in its metadata
    listed = await world.messaging.list_channel_messages(
        ChannelArn=channel["channel_arn"], ChimeBearer=world.chat.chime.service_user_arn
    )
    (in_chime,) = listed["ChannelMessages"]
    assert in_chime["MessageId"] == message["chime_message_id"]
    assert in_chime["Sender"]["Arn"] == world.arn(c1)
    metadata = json.loads(in_chime["Metadata"])
    assert metadata["mentions"] == [m1]
    assert metadata["attachments"][0]["attachment_id"] == attachment["attachment_id"]
    assert metadata["message_id"] == message["message_id"]

    # the index holds it: history for the customer and the manager
    for who in (customer, world.token(m1, "manager")):
        history = await world.http.get(
            f"/chat/channels/{channel['channel_id']}/messages", headers=who
        )
        assert history.status_code == 200, history.text
        assert history.json()["messages"] == [message]

    (event,) = await world.wait_for("MessagePosted", message_id=message["message_id"])
    assert event.data.sender_id == c1
    assert event.data.mentions == [m1]
    assert event.data.attachments[0].key == attachment["key"]
    assert event.data.channel_kind == "customer"
    assert event.data.customer_id == c1
    (mention,) = await world.wait_for("UserMentioned", message_id=message["message_id"])
    assert mention.data.mentioned_user_id == m1
    assert mention.data.mentioned_by == c1
    assert (mention.data.model_extra or {})["mentioned_user_arn"] == world.arn(m1)

    # the download: a redirect to a short-lived URL that serves the bytes
    for who in (customer, world.token(m1, "manager")):
        download = await world.http.get(
            f"/chat/attachments/{attachment['attachment_id']}", headers=who
        )
        assert download.status_code == 302, download.text
        async with httpx.AsyncClient() as plain:
            fetched = await plain.get(download.headers["location"])
        assert fetched.status_code == 200
        assert fetched.content == b"%PDF-1.4 hello"
        assert "attachment" in fetched.headers["content-disposition"]


async def test_chat_records_the_notifiers_lazy_joins_once(world: ChatWorld) -> None:
    c1, m1, m2 = world.person("c"), world.person("m"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    manager = world.token(m2, "manager")

    async def is_member() -> bool:
        listed = await world.http.get("/chat/channels", headers=manager)
        return any(
            c["channel_id"] == channel["channel_id"] and c["is_member"]
            for c in listed.json()["channels"]
        )

    assert not await is_member()
    event = Envelope.new(
        ChannelJoined(
            channel_id=channel["channel_id"],
            channel_arn=channel["channel_arn"],
            user_id=m2,
            reason="mention",
        ),
        producer="notifier",
    )
    await world.bus.publish(event)
    await world.bus.publish(event)  # a redelivery
    await wait_until(is_member, timeout=10, message="the membership")
    assert await world.chat.store.inbox.seen("chat.membership", event.event_id)  # type: ignore[union-attr]
