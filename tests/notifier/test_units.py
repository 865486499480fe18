"""The notifier's rules and handlers with recording fakes (no broker, no AWS)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from services.notifier.domain import (
    Audience,
    FeedRow,
    InvalidCursor,
    app_instance_of,
    decode_cursor,
    entries_for,
    may_see,
    recipients,
)
from services.notifier.fanout import ReceiptWatcher
from services.notifier.handlers import member_arn, on_user_mentioned
from services.notifier.joins import JoinBatcher, JoinFailed
from services.notifier.live import CLOSE_SLOW_CLIENT, Session
from services.notifier.ports import EventKey, Recorded
from shared.auth import Principal
from shared.bus import RejectEvent
from shared.events import ChannelJoined, Envelope, MessagePosted, UserMentioned, utcnow

APP = "arn:aws:chime:us-east-1:123456789012:app-instance/app-1"
CHANNEL = f"{APP}/channel/customer-c1"
MANAGER = Principal("m1", groups=frozenset({"manager"}))
CUSTOMER = Principal("c1", groups=frozenset({"customer"}))


def posted(**extra: Any) -> MessagePosted:
    values: dict[str, Any] = {
        "message_id": "msg-1",
        "channel_id": "customer-c1",
        "channel_arn": CHANNEL,
        "sender_id": "c1",
        "content": "hi",
        "posted_at": utcnow(),
        "channel_kind": "customer",
        "customer_id": "c1",
    }
    return MessagePosted(**{**values, **extra})


def mentioned(user: str = "m2", **extra: Any) -> UserMentioned:
    values: dict[str, Any] = {
        "mention_id": f"mention-{user}",
        "message_id": "msg-1",
        "channel_id": "managers-c1",
        "channel_arn": f"{APP}/channel/managers-c1",
        "mentioned_user_id": user,
        "mentioned_by": "m1",
        "excerpt": "hey",
        "channel_kind": "managers",
        "customer_id": "c1",
    }
    return UserMentioned(**{**values, **extra})


# --- rules -----------------------------------------------------------------------


def test_a_message_goes_to_members_sender_mentions_and_the_customer() -> None:
    data = posted(sender_id="m1", mentions=["m3"])
    assert recipients(data, {"m1", "m2"}) == ["c1", "m1", "m2", "m3"]


def test_a_managers_channel_never_reaches_its_customer() -> None:
    data = posted(channel_kind="managers", mentions=["c1"], sender_id="m1")
    assert recipients(data, {"m1", "c1"}) == ["m1"]


def test_a_mention_goes_to_the_mentioned_only_and_a_join_to_the_members() -> None:
    assert recipients(mentioned("m2"), {"m1"}) == ["m2"]
    joined = ChannelJoined(channel_id="x", channel_arn=CHANNEL, user_id="m4", reason="manual")
    assert recipients(joined, {"m1"}) == ["m1", "m4"]
    entries = entries_for("e1", joined, {"m1"})
    assert {e.frame_type for e in entries} == {"channel.joined"}
    assert entries[0].audience.subject_id == "m4"


def test_customers_see_their_own_channel_and_their_own_joins_only() -> None:
    own = Audience("customer", "c1")
    assert may_see(CUSTOMER, own)
    assert may_see(MANAGER, own)
    assert not may_see(CUSTOMER, Audience("managers", "c1"))
    assert not may_see(CUSTOMER, Audience("customer", "c2"))
    assert not may_see(CUSTOMER, Audience(None, None))  # unknown channel kind: no
    assert may_see(CUSTOMER, Audience(None, None, subject_id="c1"))
    assert may_see(MANAGER, Audience(None, None))


def test_cursors_and_arns_are_checked() -> None:
    assert decode_cursor("42") == 42
    for bad in ("", "-1", "1.5", "abc", "9" * 19):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad)
    assert app_instance_of(CHANNEL) == APP
    with pytest.raises(ValueError, match="channel ARN"):
        app_instance_of("arn:aws:chime:us-east-1:1:meeting/abc")


def test_the_member_arn_comes_from_chat_when_it_names_one() -> None:
    assert member_arn(mentioned("m2")) == f"{APP}/user/m2"
    named = mentioned("Odd Name", mentioned_user_arn=f"{APP}/user/h.abc")
    assert member_arn(named) == f"{APP}/user/h.abc"
    foreign = mentioned("m2", mentioned_user_arn="arn:aws:chime:us-east-1:1:app-instance/x/user/m2")
    assert member_arn(foreign) == f"{APP}/user/m2"


# --- lazy joins, coalesced ---------------------------------------------------------


class RecordingChime:
    def __init__(self, refuse: Sequence[str] = (), fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.refuse = set(refuse)
        self.fail = fail

    async def add_members(self, channel_arn: str, arns: list[str]) -> dict[str, str | None]:
        self.calls.append((channel_arn, list(arns)))
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return {a: ("ForbiddenException" if a in self.refuse else None) for a in arns}


async def test_joins_due_together_on_a_channel_make_one_call() -> None:
    chime = RecordingChime()
    batcher = JoinBatcher(chime.add_members, window_seconds=0.02)
    users = [f"{APP}/user/m{i}" for i in range(3)]
    await asyncio.gather(*(batcher.join(CHANNEL, u) for u in [*users, users[0]]))
    await batcher.join(f"{APP}/channel/other", users[0])
    assert chime.calls == [(CHANNEL, users), (f"{APP}/channel/other", users[:1])]


async def test_more_than_a_hundred_joins_are_split_and_failures_stay_per_member() -> None:
    refused = f"{APP}/user/m7"
    chime = RecordingChime(refuse=[refused])
    batcher = JoinBatcher(chime.add_members, window_seconds=0.05)
    users = [f"{APP}/user/m{i}" for i in range(150)]
    results = await asyncio.gather(
        *(batcher.join(CHANNEL, u) for u in users), return_exceptions=True
    )
    assert [len(arns) for _, arns in chime.calls] == [100, 50]
    failed = [u for u, r in zip(users, results, strict=True) if isinstance(r, Exception)]
    assert failed == [refused]
    assert isinstance(results[7], JoinFailed)
    assert results[7].code == "ForbiddenException"


async def test_a_failed_call_fails_every_join_in_it() -> None:
    batcher = JoinBatcher(RecordingChime(fail=RuntimeError("503")).add_members, window_seconds=0)
    with pytest.raises(RuntimeError, match="503"):
        await batcher.join(CHANNEL, f"{APP}/user/m1")


# --- the mention handler -------------------------------------------------------------


class FakeClaims:
    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.released: list[str] = []

    async def claim(self, consumer: str, event_id: str, lease_seconds: int = 60) -> bool:
        if event_id in self.state:
            return False
        self.state[event_id] = "processing"
        return True

    async def release(self, consumer: str, event_id: str) -> None:
        self.state.pop(event_id, None)
        self.released.append(event_id)


class FakeMembers:
    def __init__(self, members: set[tuple[str, str]]) -> None:
        self.rows = set(members)
        self.forgotten: list[tuple[str, str]] = []

    async def members(self, channel_id: str) -> set[str]:
        return {u for c, u in self.rows if c == channel_id}

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        return (channel_id, user_id) in self.rows

    async def add(self, channel_id: str, user_id: str, reason: str) -> None:
        self.rows.add((channel_id, user_id))

    async def remove(self, channel_id: str, user_id: str) -> None:
        self.rows.discard((channel_id, user_id))

    def forget(self, channel_id: str, user_id: str) -> None:
        self.forgotten.append((channel_id, user_id))

    def learned(self, channel_id: str, user_id: str) -> None:
        self.rows.add((channel_id, user_id))


class FakeMentions:
    """The inbox: what each commit recorded (mention, membership, announced
    event), completing the claim as the real one does."""

    def __init__(self, claims: FakeClaims) -> None:
        self.claims = claims
        self.commits: list[tuple[str, Envelope | None]] = []

    async def record(
        self, mention: UserMentioned, at: str, *, joined: Envelope | None, claim: EventKey
    ) -> Recorded:
        self.commits.append((mention.mention_id, joined))
        self.claims.state[claim[1]] = "done"
        return Recorded(mention=True, joined=joined is not None)

    async def page(self, *args: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], str | None]:
        return [], None

    async def unread_count(self, user_id: str) -> int:
        return 0

    async def mark_read(self, user_id: str, mention_id: str, at: str) -> bool:
        return False


class FakeJoiner:
    def __init__(self, error: Exception | None = None) -> None:
        self.joins: list[tuple[str, str]] = []
        self.error = error

    async def join(self, channel_arn: str, member_arn: str) -> None:
        self.joins.append((channel_arn, member_arn))
        if self.error is not None:
            raise self.error


def mention_handler(
    members: set[tuple[str, str]] | None = None, joiner: FakeJoiner | None = None
) -> tuple[Any, FakeClaims, FakeMentions, FakeJoiner]:
    claims = FakeClaims()
    mentions = FakeMentions(claims)
    joiner = joiner or FakeJoiner()

    async def handler(envelope: Envelope) -> None:
        assert isinstance(envelope.data, UserMentioned)
        await on_user_mentioned(
            envelope.data,
            envelope,
            claims=claims,
            members=FakeMembers(members or set()),
            mentions=mentions,
            joiner=joiner,
        )

    return handler, claims, mentions, joiner


async def test_a_mention_delivered_twice_joins_once_and_announces_once() -> None:
    handler, _, store, joiner = mention_handler()
    envelope = Envelope.new(mentioned("m2"), producer="chat")
    await handler(envelope)
    await handler(envelope)
    assert joiner.joins == [(f"{APP}/channel/managers-c1", f"{APP}/user/m2")]
    assert len(store.commits) == 1
    mention_id, joined = store.commits[0]
    assert mention_id == "mention-m2"
    assert joined is not None  # the membership, announced with it
    assert joined.data.model_dump()["user_id"] == "m2"
    assert joined.data.model_dump()["channel_id"] == "managers-c1"
    assert joined.producer == "notifier"
    assert joined.correlation_id == envelope.correlation_id
    assert joined.data.model_dump()["reason"] == "mention"
    assert joined.data.model_dump()["channel_kind"] == "managers"


async def test_a_member_is_not_joined_again_but_gets_the_inbox_entry() -> None:
    handler, _, store, joiner = mention_handler({("managers-c1", "m2")})
    await handler(Envelope.new(mentioned("m2"), producer="chat"))
    assert joiner.joins == []
    [(mention_id, joined)] = store.commits
    assert joined is None
    assert mention_id == "mention-m2"


async def test_a_refused_join_is_dead_lettered_and_the_claim_released() -> None:
    handler, claims, store, _ = mention_handler(joiner=FakeJoiner(JoinFailed("x", "Forbidden")))
    envelope = Envelope.new(mentioned("m2"), producer="chat")
    with pytest.raises(RejectEvent):
        await handler(envelope)
    assert claims.released == [envelope.event_id]
    assert store.commits == []


async def test_a_customer_mentioned_into_the_managers_channel_is_refused() -> None:
    handler, _, store, joiner = mention_handler()
    with pytest.raises(RejectEvent, match="customer_in_managers_channel"):
        await handler(Envelope.new(mentioned("c1"), producer="chat"))
    assert joiner.joins == []
    assert store.commits == []


# --- fan-out from peers' appends ---------------------------------------------------------


class FakeFeed:
    def __init__(self) -> None:
        self.writing: set[str] = set()  # appends still queued in this process's writer
        self.local: set[str] = set()
        self.done: dict[str, set[str]] = {}
        self.lookups: list[list[str]] = []

    async def append(
        self, key: str, entries: Sequence[Any], notify: set[str] | None = None
    ) -> bool:
        return True

    async def receipts(self, keys: Sequence[str]) -> dict[str, set[str]]:
        self.lookups.append(list(keys))
        return {k: self.done[k] for k in keys if k in self.done}

    def in_flight(self, key: str) -> bool:
        return key in self.writing

    def written_here(self, key: str) -> bool:
        return key in self.local


class FakeHub:
    def __init__(self) -> None:
        self.poked: list[str] = []

    def poke(self, users: Any) -> None:
        self.poked += sorted(users)

    def interested(self, audience: Audience) -> bool:
        return True


async def test_peers_appends_are_looked_up_together_and_local_ones_not_at_all() -> None:
    now = [0.0]
    feed, hub = FakeFeed(), FakeHub()
    watcher = ReceiptWatcher(feed=feed, hub=hub, grace_seconds=0.25, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        watcher.watch(key)
    feed.local.add("a")  # written by this replica meanwhile
    feed.done["b"] = {"m1", "m2"}
    await watcher.check()
    assert feed.lookups == []  # still in the grace period
    now[0] = 0.3
    await watcher.check()
    assert feed.lookups == [["b", "c"]]
    assert hub.poked == ["m1", "m2"]
    assert len(watcher) == 1  # c: not written yet, looked up again later
    feed.done["c"] = {"m3"}
    now[0] = 0.4
    await watcher.check()
    assert len(feed.lookups) == 1  # c backs off
    now[0] = 1.0
    await watcher.check()
    assert hub.poked == ["m1", "m2", "m3"]
    assert len(watcher) == 0


# --- a slow client -------------------------------------------------------------------------


class StuckSocket:
    """A WebSocket whose client never reads: the first send never completes."""

    def __init__(self) -> None:
        self.client_state = self.application_state = None
        self.closed: tuple[int, str] | None = None
        self.sent = 0
        self._gone = asyncio.Event()

    async def accept(self) -> None:
        return None

    async def send_text(self, text: str) -> None:
        self.sent += 1
        if self.sent > 1:  # the ready frame goes through
            await asyncio.Event().wait()

    async def receive(self) -> dict[str, Any]:
        await self._gone.wait()
        return {"type": "websocket.disconnect"}

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)
        self._gone.set()


class ListFeed:
    def __init__(self, rows: int) -> None:
        self.rows = [
            FeedRow(i, "message.posted", {"n": i}, Audience("customer", "c1"))
            for i in range(1, rows + 1)
        ]

    async def head(self, user_id: str) -> int:
        return len(self.rows)

    async def read(self, user_id: str, after: int, limit: int = 100) -> tuple[list[FeedRow], bool]:
        page = self.rows[after : after + limit]
        return page, len(page) == limit


async def test_a_client_that_does_not_read_is_closed_4429_and_the_buffer_stays_bounded() -> None:
    socket = StuckSocket()
    session = Session(
        socket,  # type: ignore[arg-type]
        MANAGER,
        ListFeed(50),
        replay_limit=1000,
        send_buffer=8,
        send_timeout=0.1,
        poll_seconds=10,
    )
    assert await session.start("0")
    await asyncio.wait_for(session.run(), 5)
    assert socket.closed is not None
    assert socket.closed[0] == CLOSE_SLOW_CLIENT
    assert session.outbound.qsize() <= 8


async def test_a_cursor_too_far_behind_is_refused_4410() -> None:
    socket = StuckSocket()
    session = Session(
        socket,  # type: ignore[arg-type]
        MANAGER,
        ListFeed(50),
        replay_limit=10,
        send_buffer=8,
        send_timeout=0.1,
        poll_seconds=10,
    )
    assert not await session.start("5")
    assert socket.closed is not None
    assert socket.closed[0] == 4410


class GatedTable:
    """A DynamoDB client whose Query reads the rows of the moment it is asked,
    and whose PutItem lands only after a Query has read."""

    def __init__(self) -> None:
        self.rows: set[tuple[str, str]] = set()
        self.queried = asyncio.Event()
        self.queries = 0

    async def query(self, **kwargs: Any) -> dict[str, Any]:
        self.queries += 1
        channel = kwargs["ExpressionAttributeValues"][":c"]["S"]
        seen = [{"user_id": {"S": u}} for c, u in self.rows if c == channel]
        self.queried.set()
        await asyncio.sleep(0)
        return {"Items": seen}

    async def put_item(self, **kwargs: Any) -> dict[str, Any]:
        await self.queried.wait()
        item = kwargs["Item"]
        self.rows.add((item["channel_id"]["S"], item["user_id"]["S"]))
        return {}


async def test_a_join_being_written_is_in_a_member_list_read_before_it_landed() -> None:
    from services.notifier.adapters.members import DynamoMembers

    table = GatedTable()
    table.rows.add(("ch-1", "c1"))
    members = DynamoMembers(table, "members", cache_seconds=60)  # type: ignore[arg-type]
    join = asyncio.ensure_future(members.add("ch-1", "m1", "assigned"))
    listing = asyncio.ensure_future(members.members("ch-1"))  # reads before the put lands
    assert await listing == {"c1", "m1"}
    await join
    assert ("ch-1", "m1") in table.rows
    assert await members.members("ch-1") == {"c1", "m1"}  # and so does the cached set
    assert table.queries == 1
