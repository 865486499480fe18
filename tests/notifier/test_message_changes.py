"""`message.updated` / `message.deleted`: who gets the feed rows (whom the
message went to), who may see them, and that the handler appends them once
per event under the event's own key (so a redelivery appends nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.notifier.domain import Audience, entries_for, may_see, once_key, recipients
from services.notifier.handlers import on_message_changed
from shared.auth import Principal
from shared.events import Envelope, MessageDeleted, MessageUpdated, utcnow

from .test_units import CHANNEL, CUSTOMER, MANAGER, FakeMembers

CHANNEL_VALUES: dict[str, Any] = {
    "message_id": "msg-1",
    "channel_id": "customer-c1",
    "channel_arn": CHANNEL,
    "channel_kind": "customer",
    "customer_id": "c1",
}


def updated(**extra: Any) -> MessageUpdated:
    values = {
        **CHANNEL_VALUES,
        "sender_id": "m1",
        "content": "fixed",
        "mentions": ["m3"],
        "posted_at": utcnow(),
        "edited_at": utcnow(),
    }
    return MessageUpdated(**{**values, **extra})


def deleted(**extra: Any) -> MessageDeleted:
    values = {**CHANNEL_VALUES, "sender_id": "c1", "deleted_at": utcnow(), "deleted_by": "m1"}
    return MessageDeleted(**{**values, **extra})


def test_an_edit_goes_where_the_post_went_and_to_the_new_mentions() -> None:
    assert recipients(updated(), {"m1", "m2"}) == ["c1", "m1", "m2", "m3"]
    entries = entries_for("e1", updated(), {"m2"})
    assert {e.frame_type for e in entries} == {"message.updated"}
    assert entries[0].data["content"] == "fixed"
    assert entries[0].data["edited_at"].endswith("Z")


def test_a_deletion_goes_to_the_members_sender_and_customer() -> None:
    assert recipients(deleted(), {"m2"}) == ["c1", "m2"]
    (entry,) = entries_for("e1", deleted(), set())
    assert entry.frame_type == "message.deleted"
    assert {"channel_id", "message_id", "deleted_at", "deleted_by"} <= set(entry.data)


def test_a_managers_channel_change_never_reaches_its_customer() -> None:
    managers = {"channel_kind": "managers", "channel_id": "managers-c1"}
    assert recipients(updated(**managers), {"m1", "c1"}) == ["m1", "m3"]
    assert recipients(deleted(**managers, sender_id="m1"), {"m1", "c1"}) == ["m1"]
    (entry, *_) = entries_for("e1", deleted(**managers, sender_id="m1"), {"m1"})
    assert entry.audience == Audience("managers", "c1")
    assert not may_see(CUSTOMER, entry.audience)
    assert may_see(MANAGER, entry.audience)
    assert not may_see(Principal("c2", groups=frozenset({"customer"})), Audience("customer", "c1"))


class RecordingFeed:
    def __init__(self) -> None:
        self.appended: dict[str, list[Any]] = {}

    async def append(
        self, key: str, entries: Sequence[Any], notify: set[str] | None = None
    ) -> bool:
        if key in self.appended:  # the receipt: idempotent as DynamoFeed's
            return False
        self.appended[key] = list(entries)
        return True


async def test_the_handler_appends_once_per_event() -> None:
    feed, members = RecordingFeed(), FakeMembers({("customer-c1", "m2")})
    envelope = Envelope.new(deleted(), producer="chat")
    for _ in range(2):  # a redelivery
        await on_message_changed(envelope.data, envelope, feed=feed, members=members)  # type: ignore[arg-type]
    assert list(feed.appended) == [once_key(envelope.event_id, 0)]
    assert sorted(e.user_id for e in feed.appended[envelope.event_id]) == ["c1", "m2"]
