"""chat end to end over RabbitMQ, moto (DynamoDB, S3) and the Chime emulator."""

from __future__ import annotations

import json
import time

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
        listed = await world.channels(manager)
        return bool(listed[channel["channel_id"]]["is_member"])

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
    assert await world.chat.inbox.seen("chat.membership", event.event_id)


async def test_reassigning_moves_the_customer_channel(world: ChatWorld) -> None:
    c1, m1, m2 = world.person("c"), world.person("m"), world.person("m")
    first = await world.assign(c1, m1)
    second = await world.assign(c1, m2)
    assert second["previous_manager_id"] == m1
    assert second["customer_channel"]["channel_id"] == first["customer_channel"]["channel_id"]
    assert second["customer_channel"]["manager_id"] == m2
    service = world.chat.chime.service_user_arn
    customer_arn = first["customer_channel"]["channel_arn"]
    managers_arn = first["managers_channel"]["channel_arn"]
    assert await world.members(customer_arn) == {service, world.arn(c1), world.arn(m2)}
    assert await world.members(managers_arn) == {service, world.arn(m1), world.arn(m2)}
    await world.wait_for("ChannelJoined", 2, user_id=m2, reason="assignment")

    seen_by_m1 = await world.channels(world.token(m1, "manager"))
    assert seen_by_m1[first["customer_channel"]["channel_id"]]["is_member"] is False
    assert seen_by_m1[first["managers_channel"]["channel_id"]]["is_member"] is True
    seen_by_m2 = await world.channels(world.token(m2, "manager"))
    assert seen_by_m2[first["customer_channel"]["channel_id"]]["is_member"] is True
    # the customer still sees exactly their channel, now with m2
    (own,) = (await world.channels(world.token(c1, "customer"))).values()
    assert own["manager_id"] == m2


async def test_a_new_manager_costs_no_chime_calls_and_joins_by_hand(world: ChatWorld) -> None:
    c1, m1, m3 = world.person("c"), world.person("m"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    newcomer = world.token(m3, "manager")

    before = await world.calls()
    listed = await world.channels(newcomer)
    assert listed[channel["channel_id"]]["is_member"] is False
    history = await world.http.get(
        f"/chat/channels/{channel['channel_id']}/messages", headers=newcomer
    )
    assert history.status_code == 200, history.text
    assert await world.calls() == before

    joined = await world.http.post(f"/chat/channels/{channel['channel_id']}/join", headers=newcomer)
    assert joined.status_code == 204, joined.text
    assert world.arn(m3) in await world.members(channel["channel_arn"])
    (event,) = await world.wait_for("ChannelJoined", user_id=m3, reason="manual")
    assert event.data.channel_id == channel["channel_id"]
    assert (await world.channels(newcomer))[channel["channel_id"]]["is_member"] is True
    again = await world.http.post(f"/chat/channels/{channel['channel_id']}/join", headers=newcomer)
    assert again.status_code == 204
    assert len(world.of("ChannelJoined", user_id=m3)) == 1


async def test_a_manager_who_is_not_a_member_is_joined_by_posting(world: ChatWorld) -> None:
    c1, m1, m4 = world.person("c"), world.person("m"), world.person("m")
    managers = (await world.assign(c1, m1))["managers_channel"]
    other = world.token(m4, "manager")
    await world.channels(other)  # m4 is known to chat from now on
    posted = await world.http.post(
        f"/chat/channels/{managers['channel_id']}/messages",
        json={"content": "I'll take this one", "mentions": [m1]},
        headers=other,
    )
    assert posted.status_code == 201, posted.text
    assert world.arn(m4) in await world.members(managers["channel_arn"])
    await world.wait_for("ChannelJoined", user_id=m4, reason="manual")
    (event,) = await world.wait_for("MessagePosted", message_id=posted.json()["message_id"])
    assert event.data.channel_kind == "managers"


async def test_metadata_that_does_not_fit_is_a_reference_to_the_index(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    customer = world.token(c1, "customer")
    ids = []
    for n in range(5):
        upload = await world.http.post(
            "/chat/attachments",
            files={"file": (f"{n}-{'x' * 240}.txt", f"file {n}".encode(), "text/plain")},
            headers=customer,
        )
        assert upload.status_code == 201, upload.text
        ids.append(upload.json()["attachment_id"])
    posted = await world.http.post(
        f"/chat/channels/{channel['channel_id']}/messages",
        json={"content": "five files", "attachment_ids": ids},
        headers=customer,
    )
    assert posted.status_code == 201, posted.text
    message = posted.json()
    got = await world.messaging.get_channel_message(
        ChannelArn=channel["channel_arn"],
        MessageId=message["chime_message_id"],
        ChimeBearer=world.chat.chime.service_user_arn,
    )
    metadata = json.loads(got["ChannelMessage"]["Metadata"])
    assert metadata["ref"] == "chat-messages"
    assert metadata["attachment_count"] == 5
    assert metadata["message_id"] == message["message_id"]
    history = await world.http.get(
        f"/chat/channels/{channel['channel_id']}/messages", headers=customer
    )
    (indexed,) = history.json()["messages"]
    assert [a["attachment_id"] for a in indexed["attachments"]] == ids


async def test_a_presigned_post_upload_can_be_attached(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    customer = world.token(c1, "customer")
    body = b"\x89PNG fake image"
    asked = await world.http.post(
        "/chat/attachments",
        json={"name": "photo.png", "size": len(body), "content_type": "image/png"},
        headers=customer,
    )
    assert asked.status_code == 201, asked.text
    form = asked.json()
    assert form["key"] == f"attachments/{form['attachment_id']}"
    policy = json.loads(__import__("base64").b64decode(form["upload"]["fields"]["policy"]).decode())
    assert ["content-length-range", len(body), len(body)] in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"]

    post = {
        "content": "photo",
        "attachment_ids": [form["attachment_id"]],
    }
    early = await world.http.post(
        f"/chat/channels/{channel['channel_id']}/messages", json=post, headers=customer
    )
    assert early.status_code == 422
    assert early.json()["error"]["details"][0]["reason"] == "not_uploaded"

    async with httpx.AsyncClient() as plain:
        uploaded = await plain.post(
            form["upload"]["url"],
            data=form["upload"]["fields"],
            files={"file": ("photo.png", body, "image/png")},
        )
    assert uploaded.status_code in (200, 204), uploaded.text
    posted = await world.http.post(
        f"/chat/channels/{channel['channel_id']}/messages", json=post, headers=customer
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["attachments"][0]["content_type"] == "image/png"


async def test_a_manager_may_take_a_customer_and_is_then_a_member(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    await world.seen(c1, "customer")
    response = await world.http.put(
        f"/chat/customers/{c1}/manager", json={"manager_id": m1}, headers=world.token(m1, "manager")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_channel"]["is_member"] is True
    assert body["managers_channel"]["is_member"] is True
    taken = await world.http.put(
        f"/chat/customers/{m1}/manager", json={"manager_id": c1}, headers=world.token(m1, "manager")
    )
    assert taken.status_code == 422
    assert taken.json()["error"]["code"] == "not_a_customer"


async def test_history_pages_newest_first(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    customer = world.token(c1, "customer")
    url = f"/chat/channels/{channel['channel_id']}/messages"
    sent = []
    for n in range(7):
        posted = await world.http.post(url, json={"content": f"message {n}"}, headers=customer)
        assert posted.status_code == 201, posted.text
        sent.append(posted.json()["message_id"])
    first = (await world.http.get(url, headers=customer)).json()
    assert [m["message_id"] for m in first["messages"]] == sent[::-1][:5]
    second = (
        await world.http.get(url, params={"cursor": first["next_cursor"]}, headers=customer)
    ).json()
    assert [m["message_id"] for m in second["messages"]] == sent[::-1][5:]
    assert (
        second["next_cursor"] is None
        or not (
            await world.http.get(url, params={"cursor": second["next_cursor"]}, headers=customer)
        ).json()["messages"]
    )
    other = (await world.assign(world.person("c"), m1))["customer_channel"]
    foreign = await world.http.get(
        f"/chat/channels/{other['channel_id']}/messages",
        params={"cursor": first["next_cursor"]},
        headers=world.token(m1, "manager"),
    )
    assert foreign.status_code == 400
    assert foreign.json()["error"]["code"] == "invalid_cursor"


async def test_uploads_never_attached_are_swept(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    customer = world.token(c1, "customer")
    ids = []
    for name in ("kept.txt", "dropped.txt"):
        upload = await world.http.post(
            "/chat/attachments", files={"file": (name, b"bytes", "text/plain")}, headers=customer
        )
        assert upload.status_code == 201, upload.text
        ids.append(upload.json())
    kept, dropped = ids
    posted = await world.http.post(
        f"/chat/channels/{channel['channel_id']}/messages",
        json={"content": "one of two", "attachment_ids": [kept["attachment_id"]]},
        headers=customer,
    )
    assert posted.status_code == 201, posted.text

    assert await world.chat.use_cases.attachments.sweep_unattached(before=int(time.time()) + 1) >= 1
    bucket = world.settings.chat_attachments_bucket
    listed = await world.s3.list_objects_v2(Bucket=bucket, Prefix="attachments/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert kept["key"] in keys
    assert dropped["key"] not in keys
    gone = await world.http.get(f"/chat/attachments/{dropped['attachment_id']}", headers=customer)
    assert gone.status_code == 404
    still = await world.http.get(f"/chat/attachments/{kept['attachment_id']}", headers=customer)
    assert still.status_code == 302


async def test_the_directory_names_whom_a_caller_may_mention(world: ChatWorld) -> None:
    c1, c2, m1 = world.person("c"), world.person("c"), world.person("m")
    await world.assign(c1, m1)
    for who, role in ((c1, "customer"), (c2, "customer"), (m1, "manager")):
        seen = await world.http.get("/chat/channels", headers=world.token(who, role))
        assert seen.status_code == 200  # signing in to chat records the username

    async def named(who: str, role: str) -> dict[str, str]:
        response = await world.http.get("/chat/people", headers=world.token(who, role))
        assert response.status_code == 200, response.text
        return {p["user_id"]: p["role"] for p in response.json()["people"]}

    as_customer = await named(c1, "customer")
    assert as_customer[m1] == "manager"
    assert as_customer[c1] == "customer"
    assert c2 not in as_customer  # a customer never learns about other customers
    assert {c1: "customer", c2: "customer", m1: "manager"}.items() <= (
        await named(m1, "manager")
    ).items()
