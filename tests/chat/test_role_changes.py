"""The access matrix of issue 13, over real RabbitMQ, moto server (with a
Cognito user pool, as `make run` has) and the Chime emulator: chat and the
notifier in one app in cognito mode, people signed in to the pool, roles
changed in the pool as `make token` changes them.

For each role change — a customer named as a manager (refused), a manager
demoted to customer, a manager reassigned away from a customer — every chat
route that reads or writes a channel (history, post, post with an attachment,
attachment download, the channel list, the customer's chat, join) and the
WebSocket is denied as docs/chat.md ("Roles and access") says, and Chime's
memberships follow."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from emulators.chime.control import EmulatorControl
from services.chat.bootstrap import Chat
from services.chat.bootstrap import definition as chat_definition
from services.chat.roles import RoleChanges
from services.chat.settings import ChatSettings
from services.notifier.bootstrap import definition as notifier_definition
from services.notifier.settings import NotifierSettings
from services.notifier.state import Notifier
from services.platform.identity import PoolAdmin, UserPool, sign_in
from shared.bus import EventBus, Subscription, create_bus, instance_id
from shared.events import Envelope
from shared.service import create_platform_app, provided_by
from tests.notifier.conftest import Client, ws_url
from tests.support import drop_topology, isolated, serving, wait_until

pytestmark = pytest.mark.amqp

SPY = "spy.roles"
KEYS = ("chat.message_posted", "chat.channel_joined", "chat.channel_left")


@dataclass
class Stack:
    http: httpx.AsyncClient
    base: str
    pool: UserPool
    admin: PoolAdmin
    chat: Chat
    notifier: Notifier
    roles: RoleChanges
    chime: EmulatorControl
    run: str
    events: list[Envelope] = field(default_factory=list)
    subs: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    async def person(self, name: str, *groups: str) -> str:
        """A pool user with exactly `groups` (as `make token` sets them) and a
        fresh access token; their id everywhere is the token's `sub`."""
        username = f"{name}-{self.run}"
        sub = await self.admin.ensure_user(self.pool, username, groups)
        self.subs[sub] = username
        self.tokens[sub] = await sign_in(self.pool, username)
        return sub

    async def regroup(self, sub: str, *groups: str) -> None:
        """Their groups change in the pool; their next token says so."""
        await self.admin.ensure_user(self.pool, self.subs[sub], groups)
        self.tokens[sub] = await sign_in(self.pool, self.subs[sub])

    def auth(self, sub: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[sub]}"}

    async def assign(self, customer: str, manager: str, by: dict[str, str]) -> httpx.Response:
        return await self.http.put(
            f"/chat/customers/{customer}/manager", json={"manager_id": manager}, headers=by
        )

    async def post(self, sub: str, channel_id: str, content: str, **extra: Any) -> httpx.Response:
        body = {"content": content, **extra}
        return await self.http.post(
            f"/chat/channels/{channel_id}/messages", json=body, headers=self.auth(sub)
        )

    async def upload(self, sub: str) -> str:
        response = await self.http.post(
            "/chat/attachments",
            files={"file": ("notes.txt", b"for the file", "text/plain")},
            headers=self.auth(sub),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["attachment_id"])

    async def members(self, channel_arn: str) -> set[str]:
        return set((await self.chime.channel(channel_arn))["members"])

    def arn(self, sub: str) -> str:
        return self.chat.chime.user_arn(sub)

    async def left(self, user: str, channel_id: str, reason: str) -> None:
        def seen() -> bool:
            return any(
                e.type == "ChannelLeft"
                and e.data.user_id == user  # type: ignore[attr-defined]
                and e.data.channel_id == channel_id  # type: ignore[attr-defined]
                and e.data.reason == reason  # type: ignore[attr-defined]
                for e in self.events
            )

        await wait_until(seen, timeout=15, message=f"ChannelLeft {reason} of {channel_id}")

    async def feed_messages(self, sub: str) -> set[str]:
        """The message ids in the notifier's feed of this person (all of it)."""
        found: set[str] = set()
        after, more = 0, True
        while more:
            rows, more = await self.notifier.feed.read(sub, after)
            if not rows:
                break
            after = rows[-1].seq
            found |= {str(r.data["message_id"]) for r in rows if r.frame_type == "message.posted"}
        return found

    @contextlib.asynccontextmanager
    async def ws(self, sub: str, **params: str) -> AsyncIterator[Client]:
        url = ws_url(self.base, token=self.tokens[sub], **params)
        async with connect(url, max_queue=None) as raw:
            client = Client(raw).start()
            await client.wait_for(lambda f: any(x["type"] == "session.ready" for x in f))
            try:
                yield client
            finally:
                await client.close()


def posted_in(client: Client, channel_id: str) -> set[str]:
    return {
        f["data"]["message_id"]
        for f in client.of("message.posted")
        if f["data"]["channel_id"] == channel_id
    }


async def arrived(client: Client, channel_id: str, message_id: str) -> None:
    await client.wait_for(lambda _: message_id in posted_in(client, channel_id), timeout=20)


@pytest.fixture(scope="module")
async def stack(amqp_url: str, moto_url: str, chime_url: str) -> AsyncIterator[Stack]:
    run = uuid.uuid4().hex[:8]
    test_id = f"roles{run}"
    async with PoolAdmin(moto_url, "us-east-1") as admin:
        pool = await admin.ensure_pool(name=f"belfry-{test_id}")
        common: dict[str, Any] = {
            **isolated(test_id),
            "amqp_url": amqp_url,
            "aws_endpoint_url": moto_url,
            "chime_endpoint_url": chime_url,
            "retry_delays_seconds": (0.2, 0.5, 1.0),
            "log_level": "WARNING",
            **pool.service_settings(),
        }
        chat_settings = ChatSettings.model_validate(
            {
                **common,
                "chat_app_instance_name": test_id,
                "chat_attachments_bucket": f"{test_id}-att",
                "chat_role_sweep_interval_seconds": 3600,  # the test sweeps itself
            }
        )
        notifier_settings = NotifierSettings.model_validate(common)
        spy: EventBus = create_bus(chat_settings, "spy")
        events: list[Envelope] = []

        async def record(envelope: Envelope) -> None:
            events.append(envelope)

        spy.subscribe(Subscription(SPY, KEYS, record))
        await spy.start()
        app = create_platform_app(
            [chat_definition, notifier_definition],
            settings={"chat": chat_settings, "notifier": notifier_settings},
        )
        try:
            async with (
                serving(app) as base,
                httpx.AsyncClient(base_url=base, timeout=30) as http,
                EmulatorControl(chime_url) as chime,
            ):
                yield Stack(
                    http=http,
                    base=base,
                    pool=pool,
                    admin=admin,
                    chat=provided_by(app, Chat),
                    notifier=provided_by(app, Notifier),
                    roles=provided_by(app, RoleChanges),
                    chime=chime,
                    run=run,
                    events=events,
                )
        finally:
            await spy.stop()
            await drop_topology(chat_settings, f"notifier.fanout.{instance_id(chat_settings)}", SPY)


@dataclass
class Chats:
    """A customer assigned to a manager, a message with an attachment in each
    of the customer's channels."""

    customer: str
    manager: str
    customer_channel: dict[str, Any]
    managers_channel: dict[str, Any]
    attachments: dict[str, str]  # channel id -> an attachment posted there
    sent: dict[str, str]  # channel id -> the message id of that post


async def chats(stack: Stack, customer: str, manager: str, admin: str) -> Chats:
    assigned = await stack.assign(customer, manager, stack.auth(admin))
    assert assigned.status_code == 200, assigned.text
    body = assigned.json()
    found: dict[str, str] = {}
    sent_ids: dict[str, str] = {}
    for who, channel in ((customer, body["customer_channel"]), (manager, body["managers_channel"])):
        attachment = await stack.upload(who)
        sent = await stack.post(
            who, channel["channel_id"], "with a file", attachment_ids=[attachment]
        )
        assert sent.status_code == 201, sent.text
        found[channel["channel_id"]] = attachment
        sent_ids[channel["channel_id"]] = sent.json()["message_id"]
    return Chats(
        customer, manager, body["customer_channel"], body["managers_channel"], found, sent_ids
    )


async def assert_denied(stack: Stack, sub: str, channel_ids: list[str], c: Chats) -> None:
    """Every route that reads or writes these channels, with `sub`'s current token."""
    who = stack.auth(sub)
    own = await stack.upload(sub)  # an upload is the uploader's own, channel-less: allowed
    for channel_id in channel_ids:
        url = f"/chat/channels/{channel_id}/messages"
        answers = {
            "history": await stack.http.get(url, headers=who),
            "post": await stack.post(sub, channel_id, "let me in"),
            "post with attachment": await stack.post(
                sub, channel_id, "a file", attachment_ids=[own]
            ),
            "download": await stack.http.get(
                f"/chat/attachments/{c.attachments[channel_id]}", headers=who
            ),
        }
        for route, answer in answers.items():
            assert answer.status_code == 404, (route, channel_id, answer.text)
            assert answer.json()["error"]["code"] in ("channel_not_found", "attachment_not_found")
        join = await stack.http.post(f"/chat/channels/{channel_id}/join", headers=who)
        assert join.status_code == 403, join.text
    listed = await stack.http.get("/chat/channels", headers=who)
    assert listed.status_code == 200, listed.text
    assert not {c["channel_id"] for c in listed.json()["channels"]} & set(channel_ids)


async def new_posts_reach_only_witnesses(
    stack: Stack,
    c: Chats,
    witnesses: tuple[Client, Client],
    denied: list[tuple[str, Client]],
    by: str,
) -> set[str]:
    """Both channels get a new message (the customer's by the customer, the
    managers' by `by`); a member of each (`witnesses`: customer channel,
    managers channel) sees it live; no denied WebSocket gets a frame of
    them, nor does a denied person's feed hold them."""
    ids = {}
    for sender, channel in ((c.customer, c.customer_channel), (by, c.managers_channel)):
        sent = await stack.post(sender, channel["channel_id"], "after the change")
        assert sent.status_code == 201, sent.text
        ids[channel["channel_id"]] = sent.json()["message_id"]
    for witness, (channel_id, message_id) in zip(witnesses, ids.items(), strict=True):
        await arrived(witness, channel_id, message_id)
    for sub, client in denied:
        for channel_id, message_id in ids.items():
            assert message_id not in posted_in(client, channel_id)
        assert not set(ids.values()) & await stack.feed_messages(sub)
    return set(ids.values())


async def test_a_customer_is_never_given_managers_only_access(stack: Stack) -> None:
    alice = await stack.person("alice", "admin")
    mia, carl = await stack.person("mia", "manager"), await stack.person("carl", "customer")
    xena = await stack.person("xena", "customer")  # a customer, never seen by chat
    c = await chats(stack, carl, mia, alice)

    for by in (stack.auth(alice), stack.auth(mia)):  # an admin, or any manager
        refused = await stack.assign(carl, xena, by)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "not_a_manager"
        assert error["details"]["reason"] == "wrong_role"
    unknown = await stack.assign(carl, f"ghost-{uuid.uuid4().hex}", stack.auth(alice))
    assert unknown.json()["error"]["details"]["reason"] == "unknown_user"
    assert stack.arn(xena) not in await stack.members(c.managers_channel["channel_arn"])
    assert stack.arn(xena) not in await stack.members(c.customer_channel["channel_arn"])

    channel_ids = [c.customer_channel["channel_id"], c.managers_channel["channel_id"]]
    await assert_denied(stack, xena, channel_ids, c)
    async with stack.ws(mia) as witness, stack.ws(xena) as denied:
        both = (witness, witness)
        await new_posts_reach_only_witnesses(stack, c, both, [(xena, denied)], by=mia)
        assert not {f.get("data", {}).get("channel_id") for f in denied.frames} & set(channel_ids)


async def test_a_demoted_manager_loses_every_managers_channel(stack: Stack) -> None:
    alice = await stack.person("alice", "admin")
    max_, cora = await stack.person("max", "manager"), await stack.person("cora", "customer")
    nina, olga = await stack.person("nina", "manager"), await stack.person("olga", "manager")
    c = await chats(stack, cora, max_, alice)
    managers = c.managers_channel
    for colleague in (nina, olga):
        joined = await stack.http.post(
            f"/chat/channels/{managers['channel_id']}/join", headers=stack.auth(colleague)
        )
        assert joined.status_code == 204, joined.text

    async with stack.ws(max_) as before:  # opened with the manager token
        await stack.regroup(max_, "customer")  # demoted in the pool
        # noticed on their own next call (any route): memberships end in Chime and chat
        assert (await stack.http.get("/chat/channels", headers=stack.auth(max_))).json()[
            "channels"
        ] == []
        await stack.left(max_, managers["channel_id"], "role_lost")
        await stack.left(max_, c.customer_channel["channel_id"], "role_lost")
        assert stack.arn(max_) not in await stack.members(managers["channel_arn"])
        assert stack.arn(max_) not in await stack.members(c.customer_channel["channel_arn"])
        await before.wait_for(lambda f: any(x["type"] == "channel.left" for x in f))

        # ... and by the sweep, for one who never calls again
        await stack.regroup(olga, "customer")
        assert await stack.roles.sweep() >= 1
        await stack.left(olga, managers["channel_id"], "role_lost")
        assert stack.arn(olga) not in await stack.members(managers["channel_arn"])

        channel_ids = [c.customer_channel["channel_id"], managers["channel_id"]]
        await assert_denied(stack, max_, channel_ids, c)
        mention = await stack.post(nina, managers["channel_id"], "@max?", mentions=[max_])
        assert mention.status_code == 422, mention.text
        assert mention.json()["error"]["details"] == [{"user_id": max_, "reason": "not_a_manager"}]
        async with stack.ws(cora) as own, stack.ws(nina) as witness, stack.ws(max_) as after:
            # `before` still holds a manager token: it is the membership that is gone
            denied = [(max_, after), (max_, before)]
            witnesses = (own, witness)
            fresh = await new_posts_reach_only_witnesses(stack, c, witnesses, denied, by=nina)
        # max's feed still holds what he was sent as a manager; resumed from its
        # start with his customer token it replays nothing of those channels.
        # As the customer he now is, he gets a chat of his own: its message is
        # the last row of his feed, so once it is here the replay is complete.
        his_own = c.sent[managers["channel_id"]]
        assert his_own in await stack.feed_messages(max_)
        his = await stack.assign(max_, nina, stack.auth(alice))
        assert his.status_code == 200, his.text
        own_channel = his.json()["customer_channel"]["channel_id"]
        async with stack.ws(max_, since="0") as resumed:
            welcome = await stack.post(nina, own_channel, "welcome, as a customer")
            assert welcome.status_code == 201, welcome.text
            mark = welcome.json()["message_id"]
            await resumed.wait_for(lambda _: mark in posted_in(resumed, own_channel))
            assert his_own not in posted_in(resumed, managers["channel_id"])
            replayed = {f.get("data", {}).get("channel_id") for f in resumed.frames}
            assert managers["channel_id"] not in replayed
            assert c.customer_channel["channel_id"] not in replayed
            assert not fresh & await stack.feed_messages(olga)  # swept: no feed rows either


async def test_a_manager_reassigned_away_gets_no_more_of_that_customer(stack: Stack) -> None:
    alice = await stack.person("alice", "admin")
    mo, ivy = await stack.person("mo", "manager"), await stack.person("ivy", "manager")
    dora = await stack.person("dora", "customer")
    c = await chats(stack, dora, mo, alice)
    customer_channel = c.customer_channel

    async with stack.ws(mo) as away, stack.ws(ivy) as witness:
        moved = await stack.assign(dora, ivy, stack.auth(alice))
        assert moved.status_code == 200, moved.text
        assert moved.json()["previous_manager_id"] == mo
        await stack.left(mo, customer_channel["channel_id"], "reassignment")
        assert await stack.members(customer_channel["channel_arn"]) == {
            stack.chat.chime.service_user_arn,
            stack.arn(dora),
            stack.arn(ivy),
        }
        await away.wait_for(
            lambda f: any(
                x["type"] == "channel.left"
                and x["data"]["channel_id"] == customer_channel["channel_id"]
                for x in f
            )
        )
        listed = await stack.http.get("/chat/channels", headers=stack.auth(mo))
        mine = {x["channel_id"]: x["is_member"] for x in listed.json()["channels"]}
        assert mine[customer_channel["channel_id"]] is False

        sent = await stack.post(dora, customer_channel["channel_id"], "hello ivy")
        assert sent.status_code == 201, sent.text
        message_id = sent.json()["message_id"]
        await witness.wait_for(
            lambda _: message_id in posted_in(witness, customer_channel["channel_id"])
        )
        assert message_id not in posted_in(away, customer_channel["channel_id"])
        assert message_id not in await stack.feed_messages(mo)
