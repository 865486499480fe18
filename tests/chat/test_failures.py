"""When Chime fails or two posts race for one attachment, nothing is half-written:
no message in Chime without its index row and its events, and vice versa."""

from __future__ import annotations

import asyncio

import pytest

from tests.chat.conftest import ChatWorld

pytestmark = pytest.mark.amqp


async def test_chime_failing_to_send_is_a_503_with_nothing_written(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    customer = world.token(c1, "customer")
    url = f"/chat/channels/{channel['channel_id']}/messages"
    await world.chime.set_faults(
        operations={"SendChannelMessage": {"share": 1.0, "statuses": [503]}}
    )
    try:
        response = await world.http.post(
            url, json={"content": "hello", "mentions": [m1]}, headers=customer
        )
    finally:
        await world.chime.clear_faults()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert response.json()["error"]["code"] == "chime_unavailable"
    assert (await world.http.get(url, headers=customer)).json()["messages"] == []
    assert (await world.chime.channel(channel["channel_arn"]))["message_count"] == 0
    assert world.of("MessagePosted", channel_id=channel["channel_id"]) == []

    retried = await world.http.post(
        url, json={"content": "hello", "mentions": [m1]}, headers=customer
    )
    assert retried.status_code == 201, retried.text


async def test_two_posts_racing_for_one_attachment_leave_one_message(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    customer = world.token(c1, "customer")
    upload = await world.http.post(
        "/chat/attachments", files={"file": ("a.txt", b"once", "text/plain")}, headers=customer
    )
    attachment_id = upload.json()["attachment_id"]
    url = f"/chat/channels/{channel['channel_id']}/messages"
    body = {"content": "the file", "attachment_ids": [attachment_id]}
    responses = await asyncio.gather(
        *(world.http.post(url, json=body, headers=customer) for _ in range(3))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 201, [r.text for r in responses]
    assert all(s in (409, 422) for s in statuses[1:]), [r.text for r in responses]
    (winner,) = [r.json() for r in responses if r.status_code == 201]

    listed = await world.messaging.list_channel_messages(
        ChannelArn=channel["channel_arn"], ChimeBearer=world.chat.chime.service_user_arn
    )
    assert [m["MessageId"] for m in listed["ChannelMessages"]] == [winner["chime_message_id"]]
    history = (await world.http.get(url, headers=customer)).json()["messages"]
    assert [m["message_id"] for m in history] == [winner["message_id"]]
    await world.wait_for("MessagePosted", message_id=winner["message_id"])
    assert len(world.of("MessagePosted", channel_id=channel["channel_id"])) == 1


async def test_racing_reassignments_leave_chime_and_chat_agreeing(world: ChatWorld) -> None:
    c1, m1, m2, m3 = world.person("c"), world.person("m"), world.person("m"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    for manager in (m2, m3):
        await world.seen(manager, "manager")
    admin = world.token("admin-race", "admin")
    responses = await asyncio.gather(
        *(
            world.http.put(
                f"/chat/customers/{c1}/manager", json={"manager_id": manager}, headers=admin
            )
            for manager in (m2, m3)
        )
    )
    assert sorted(r.status_code for r in responses) in ([200, 200], [200, 409])
    (own,) = (await world.channels(world.token(c1, "customer"))).values()
    winner = own["manager_id"]
    assert winner in (m2, m3)
    service = world.chat.chime.service_user_arn
    assert await world.members(channel["channel_arn"]) == {
        service,
        world.arn(c1),
        world.arn(winner),
    }
