"""The notifier's side of "role first, then membership" (issue 13), with fakes:
who may see a frame is decided by the session's token before anything else,
and a ChannelLeft drops the person from the membership view, so that the
channel's next messages are not written to their feed at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from services.notifier.domain import Audience, FeedEntry, may_see, recipients
from services.notifier.handlers import HANDLERS, on_channel_left, on_message_posted
from shared.auth import Principal
from shared.events import ChannelLeft, Envelope, MessagePosted, utcnow
from shared.topology import QUEUES

from .test_units import APP, FakeMembers

MANAGERS = Audience("managers", "c1")
CUSTOMERS = Audience("customer", "c1")


def who(user_id: str, *groups: str) -> Principal:
    return Principal(user_id, groups=frozenset(groups))


@pytest.mark.parametrize(
    ("principal", "audience", "visible"),
    [
        (who("m1", "manager"), MANAGERS, True),
        (who("m1", "manager", "admin"), MANAGERS, True),
        # an admin without `manager` never sees the managers channel
        (who("a1", "admin"), MANAGERS, False),
        (who("a1", "admin"), CUSTOMERS, True),
        # a demoted manager: their token says customer, whatever their feed holds
        (who("m1", "customer"), MANAGERS, False),
        (who("m1", "customer"), CUSTOMERS, False),
        # ... also a frame about themselves (their own channel.left)
        (who("m1", "customer"), Audience("managers", "c1", subject_id="m1"), False),
        (who("m1", "customer"), Audience("customer", "c1", subject_id="m1"), False),
        # the customer: their own customer channel only
        (who("c1", "customer"), CUSTOMERS, True),
        (who("c1", "customer"), MANAGERS, False),
        (who("c1", "customer"), Audience("managers", "c1", subject_id="c1"), False),
        (who("c2", "customer"), CUSTOMERS, False),
        # no chat group at all
        (who("c1"), CUSTOMERS, False),
        (who("m1"), MANAGERS, False),
    ],
)
def test_the_token_decides_before_the_feed_does(
    principal: Principal, audience: Audience, visible: bool
) -> None:
    assert may_see(principal, audience) is visible


def left(user_id: str = "m1", channel: str = "managers-c1", **extra: Any) -> ChannelLeft:
    kind = "managers" if channel.startswith("managers") else "customer"
    values: dict[str, Any] = {
        "channel_id": channel,
        "channel_arn": f"{APP}/channel/{channel}",
        "user_id": user_id,
        "reason": "role_lost",
        "channel_kind": kind,
        "customer_id": "c1",
    }
    return ChannelLeft(**{**values, **extra})


def message(channel: str = "managers-c1", sender: str = "m2") -> MessagePosted:
    return MessagePosted(
        message_id=f"msg-{sender}",
        channel_id=channel,
        channel_arn=f"{APP}/channel/{channel}",
        sender_id=sender,
        content="next steps",
        posted_at=utcnow(),
        channel_kind="managers" if channel.startswith("managers") else "customer",
        customer_id="c1",
    )


class RecordingFeed:
    """Every append, once per key (as the real feed's receipts make it)."""

    def __init__(self) -> None:
        self.appended: dict[str, list[FeedEntry]] = {}

    async def append(
        self, key: str, entries: Sequence[FeedEntry], notify: set[str] | None = None
    ) -> bool:
        if key in self.appended:
            return False
        self.appended[key] = list(entries)
        return True

    async def receipts(self, keys: Sequence[str]) -> dict[str, set[str]]:
        return {}

    def in_flight(self, key: str) -> bool:
        return False

    def written_here(self, key: str) -> bool:
        return key in self.appended

    def users(self, key: str) -> set[str]:
        return {e.user_id for e in self.appended[key]}


def test_channel_left_is_consumed_where_the_membership_view_is_kept() -> None:
    assert ChannelLeft in QUEUES["notifier.feed"].events
    assert ChannelLeft in QUEUES["notifier.fanout"].events
    assert HANDLERS["notifier.feed"][ChannelLeft] is on_channel_left


def test_a_channel_left_reaches_who_left_and_the_remaining_members() -> None:
    assert recipients(left("m1"), {"m2", "m3"}) == ["m1", "m2", "m3"]


async def test_who_left_gets_no_more_messages_of_the_channel_and_a_redelivery_is_harmless() -> None:
    members = FakeMembers({("managers-c1", "m1"), ("managers-c1", "m2"), ("customer-c1", "m1")})
    feed = RecordingFeed()

    before = Envelope.new(message(), producer="chat")
    await on_message_posted(before.data, before, feed=feed, members=members)  # type: ignore[arg-type]
    assert feed.users(before.event_id) == {"m1", "m2"}

    gone = Envelope.new(left("m1"), producer="chat")
    await on_channel_left(gone.data, gone, feed=feed, members=members)  # type: ignore[arg-type]
    await on_channel_left(gone.data, gone, feed=feed, members=members)  # type: ignore[arg-type]
    assert await members.members("managers-c1") == {"m2"}
    assert await members.members("customer-c1") == {"m1"}  # only that channel
    assert [e.frame_type for e in feed.appended[gone.event_id]] == ["channel.left"] * 2
    assert feed.users(gone.event_id) == {"m1", "m2"}
    assert len(feed.appended) == 2  # the redelivery appended nothing

    after = Envelope.new(message(), producer="chat")
    await on_message_posted(after.data, after, feed=feed, members=members)  # type: ignore[arg-type]
    assert feed.users(after.event_id) == {"m2"}
