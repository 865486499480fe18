"""Leaving a channel, by reassignment or by hand (`POST /chat/channels/{id}/leave`),
over real RabbitMQ, moto server (with a user pool) and the Chime emulator, chat
and the notifier in one app (the stack of test_role_changes): the one who left
gets nothing more of that channel on an open socket nor on a new one, until a
mention joins them again; then frames resume. The route's access rules and
JSON errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chat.test_role_changes import Stack, arrived, chats, posted_in, stack
from tests.notifier.conftest import Client
from tests.support import wait_until

pytestmark = pytest.mark.amqp
__all__ = ["stack"]  # the module-scoped fixture, shared


async def post(stack: Stack, sub: str, channel_id: str, text: str, **extra: Any) -> str:
    sent = await stack.post(sub, channel_id, text, **extra)
    assert sent.status_code == 201, sent.text
    return str(sent.json()["message_id"])


async def nothing_more(
    stack: Stack,
    away: Client,
    witness: Client,
    channel_id: str,
    *,
    sender: str,
    sentinel: tuple[str, str],
) -> None:
    """Messages posted to `channel_id` reach `witness` (so they are in every
    feed they will ever be in) and not `away`, which then gets a later message
    of another channel (`sentinel`: its sender and channel): a frame of the
    channel would have come before it."""
    sent = [await post(stack, sender, channel_id, f"not for you {i}") for i in range(3)]
    for message_id in sent:
        await arrived(witness, channel_id, message_id)
    last = await post(stack, sentinel[0], sentinel[1], "sentinel")
    await arrived(away, sentinel[1], last)
    assert posted_in(away, channel_id).isdisjoint(sent)
    assert set(sent).isdisjoint(await stack.feed_messages(away_user(stack, away)))


def away_user(stack: Stack, client: Client) -> str:
    return str(client.frames[0]["data"]["user_id"])


async def rejoined_by_mention(
    stack: Stack, away: Client, who: str, *, by: str, channel: dict[str, Any], customer: str
) -> None:
    """A mention joins them again (Chime, chat's membership, ChannelJoined
    `mention`), and the channel's frames reach them again."""
    channel_id = channel["channel_id"]
    await post(stack, by, channel_id, "come back", mentions=[who])
    await away.wait_for(
        lambda f: any(
            x["type"] == "channel.joined"
            and x["data"]["channel_id"] == channel_id
            and x["data"]["user_id"] == who
            and x["data"]["reason"] == "mention"
            for x in f
        ),
        timeout=20,
    )
    assert stack.arn(who) in await stack.members(channel["channel_arn"])

    async def member_in_chat() -> bool:
        listed = await stack.http.get("/chat/channels", headers=stack.auth(who))
        return any(
            x["channel_id"] == channel_id and x["is_member"] for x in listed.json()["channels"]
        )

    await wait_until(member_in_chat, timeout=15, message="chat records the lazy join")
    again = await post(stack, customer, channel_id, "welcome back")
    await arrived(away, channel_id, again)


async def test_a_reassigned_manager_gets_nothing_more_until_mentioned(stack: Stack) -> None:
    alice = await stack.person("alice", "admin")
    mo, ivy = await stack.person("mo", "manager"), await stack.person("ivy", "manager")
    dora = await stack.person("dora", "customer")
    c = await chats(stack, dora, mo, alice)
    customer_id = c.customer_channel["channel_id"]
    managers_id = c.managers_channel["channel_id"]

    async with stack.ws(mo) as away, stack.ws(ivy) as witness:
        moved = await stack.assign(dora, ivy, stack.auth(alice))
        assert moved.status_code == 200, moved.text
        await stack.left(mo, customer_id, "reassignment")
        # mo stays in the managers channel: ivy's post there is the sentinel
        await nothing_more(
            stack, away, witness, customer_id, sender=dora, sentinel=(ivy, managers_id)
        )
        async with stack.ws(mo) as fresh:  # a new socket: the same
            await nothing_more(
                stack, fresh, witness, customer_id, sender=dora, sentinel=(ivy, managers_id)
            )
        history = await stack.http.get(
            f"/chat/channels/{customer_id}/messages", headers=stack.auth(mo)
        )
        assert history.status_code == 200, history.text  # read access, as every manager
        await rejoined_by_mention(
            stack, away, mo, by=ivy, channel=c.customer_channel, customer=dora
        )


async def test_a_manager_who_leaves_by_hand_gets_nothing_more_until_mentioned(
    stack: Stack,
) -> None:
    alice = await stack.person("alice2", "admin")
    mo, ivy = await stack.person("mo2", "manager"), await stack.person("ivy2", "manager")
    dora = await stack.person("dora2", "customer")
    c = await chats(stack, dora, mo, alice)
    customer = c.customer_channel
    customer_id, managers_id = customer["channel_id"], c.managers_channel["channel_id"]
    async with stack.ws(ivy) as away, stack.ws(mo) as witness:
        for channel_id in (customer_id, managers_id):
            joined = await stack.http.post(
                f"/chat/channels/{channel_id}/join", headers=stack.auth(ivy)
            )
            assert joined.status_code == 204, joined.text
        await away.wait_for(
            lambda f: (
                {
                    x["data"]["channel_id"]
                    for x in f
                    if x["type"] == "channel.joined" and x["data"]["user_id"] == ivy
                }
                >= {customer_id, managers_id}
            ),
            timeout=20,
        )
        left = await stack.http.post(f"/chat/channels/{customer_id}/leave", headers=stack.auth(ivy))
        assert left.status_code == 204, left.text
        assert left.content == b""
        await stack.left(ivy, customer_id, "manual")
        assert stack.arn(ivy) not in await stack.members(customer["channel_arn"])
        again = await stack.http.post(
            f"/chat/channels/{customer_id}/leave", headers=stack.auth(ivy)
        )
        assert again.status_code == 204  # idempotent: no second ChannelLeft
        await away.wait_for(
            lambda f: any(
                x["type"] == "channel.left" and x["data"]["reason"] == "manual" for x in f
            )
        )
        listed = await stack.http.get("/chat/channels", headers=stack.auth(ivy))
        mine = {x["channel_id"]: x["is_member"] for x in listed.json()["channels"]}
        assert mine[customer_id] is False
        assert mine[managers_id] is True

        await nothing_more(
            stack, away, witness, customer_id, sender=dora, sentinel=(mo, managers_id)
        )
        manual = [
            e
            for e in stack.events
            if e.type == "ChannelLeft"
            and e.data.user_id == ivy  # type: ignore[attr-defined]
            and e.data.reason == "manual"  # type: ignore[attr-defined]
        ]
        assert len(manual) == 1
        history = await stack.http.get(
            f"/chat/channels/{customer_id}/messages", headers=stack.auth(ivy)
        )
        assert history.status_code == 200, history.text
        await rejoined_by_mention(stack, away, ivy, by=mo, channel=customer, customer=dora)


async def test_who_may_leave_and_the_errors(stack: Stack) -> None:
    alice = await stack.person("alice3", "admin")
    mo, ivy = await stack.person("mo3", "manager"), await stack.person("ivy3", "manager")
    dora = await stack.person("dora3", "customer")
    c = await chats(stack, dora, mo, alice)
    customer_id, managers_id = c.customer_channel["channel_id"], c.managers_channel["channel_id"]

    def leave(sub: str, channel_id: str) -> Any:
        return stack.http.post(f"/chat/channels/{channel_id}/leave", headers=stack.auth(sub))

    for sub, channel_id, status, code in (
        (dora, customer_id, 403, "forbidden"),  # a customer, even their own channel
        (alice, customer_id, 403, "forbidden"),  # an admin
        (mo, "customer-nobody-here", 404, "channel_not_found"),
        (mo, customer_id, 409, "assigned_manager"),  # reassign instead
    ):
        answer = await leave(sub, channel_id)
        assert answer.status_code == status, (sub, answer.text)
        assert answer.json()["error"]["code"] == code
        assert set(answer.json()["error"]) >= {"code", "message"}
    unauthenticated = await stack.http.post(f"/chat/channels/{customer_id}/leave")
    assert unauthenticated.status_code == 401
    assert "error" in unauthenticated.json()
    too_long = await leave(mo, "x" * 200)
    assert too_long.status_code in (400, 422)
    assert "error" in too_long.json()
    # not a member: 204, nothing changes
    assert (await leave(ivy, customer_id)).status_code == 204
    assert stack.arn(mo) in await stack.members(c.customer_channel["channel_arn"])
    # the assigned manager may leave the managers channel
    assert (await leave(mo, managers_id)).status_code == 204
    await stack.left(mo, managers_id, "manual")
    assert stack.arn(mo) not in await stack.members(c.managers_channel["channel_arn"])
