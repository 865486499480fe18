"""What the notifier decides: who gets an event in their feed, who may see a
frame, what a frame looks like, and what a cursor is. No I/O here."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.auth import ADMIN, CUSTOMER, MANAGER, Principal
from shared.events import (
    ChannelJoined,
    ChannelLeft,
    ChannelRead,
    EventData,
    MessageDeleted,
    MessagePosted,
    MessageUpdated,
    UserMentioned,
)

FRAME_TYPES = {
    MessagePosted.TYPE: "message.posted",
    MessageUpdated.TYPE: "message.updated",
    MessageDeleted.TYPE: "message.deleted",
    UserMentioned.TYPE: "user.mentioned",
    ChannelJoined.TYPE: "channel.joined",
    ChannelLeft.TYPE: "channel.left",
    ChannelRead.TYPE: "channel.read",
}
READY_FRAME = "session.ready"
# A feed append is one DynamoDB transaction: rows + one head per user + a receipt
# must stay under its 100 items, so an event with many recipients is split.
RECIPIENTS_PER_APPEND = 40


class InvalidCursor(ValueError):
    """A `since` that is not a cursor this user was given."""


@dataclass(frozen=True)
class Audience:
    """Who may read what a feed row is about (checked again when it is sent)."""

    channel_kind: str | None = None  # "customer" | "managers" | None (unknown)
    customer_id: str | None = None
    subject_id: str | None = None  # the member a channel.joined / channel.left is about


@dataclass(frozen=True)
class FeedEntry:
    """One frame for one user's feed."""

    user_id: str
    event_id: str
    frame_type: str
    data: dict[str, Any]
    audience: Audience


@dataclass(frozen=True)
class FeedRow:
    """A stored feed entry with its place (`seq`) in the user's feed."""

    seq: int
    frame_type: str
    data: dict[str, Any]
    audience: Audience


def _extra(data: EventData, name: str) -> str | None:
    value = getattr(data, name, None)
    if value is None and data.model_extra:
        value = data.model_extra.get(name)
    return value if isinstance(value, str) else None


def audience_of(data: EventData) -> Audience:
    subject = data.user_id if isinstance(data, ChannelJoined | ChannelLeft | ChannelRead) else None
    return Audience(_extra(data, "channel_kind"), _extra(data, "customer_id"), subject)


def recipients(data: EventData, members: Iterable[str]) -> list[str]:
    """Whose feed an event goes to: the channel's members as the notifier knows
    them (from ChannelJoined), plus the people the event names. Managers who are
    not members see a channel's messages once they join it (by hand or by being
    mentioned): "members + mentions", as Chime itself delivers."""
    who = set(members)
    audience = audience_of(data)
    if isinstance(data, MessagePosted | MessageUpdated | MessageDeleted):
        # an edit or a deletion reaches whoever its message reached
        who |= {data.sender_id, *getattr(data, "mentions", ())}
        if audience.channel_kind == "customer" and audience.customer_id:
            who.add(audience.customer_id)
    elif isinstance(data, UserMentioned):
        who = {data.mentioned_user_id}
    elif isinstance(data, ChannelJoined | ChannelLeft):
        who.add(data.user_id)  # who left hears it too (if their token may see it)
    elif isinstance(data, ChannelRead):
        who = {data.user_id}  # the reader's own sessions (all of them: idempotent)
    if audience.channel_kind == "managers" and audience.customer_id:
        who.discard(audience.customer_id)  # never a customer into the managers' channel
    return sorted(who)


def entries_for(event_id: str, data: EventData, members: Iterable[str]) -> list[FeedEntry]:
    frame_type = FRAME_TYPES[data.TYPE]
    payload = data.model_dump(mode="json")
    audience = audience_of(data)
    return [
        FeedEntry(user, event_id, frame_type, payload, audience)
        for user in recipients(data, members)
    ]


def is_staff(principal: Principal) -> bool:
    return principal.has_any(MANAGER, ADMIN)


def may_see(principal: Principal, audience: Audience) -> bool:
    """Role first, as chat decides (docs/chat.md, "Roles and access"): only a
    token with `manager` sees a managers channel, whoever the feed row was
    written for; managers and admins see every customer channel; a customer
    only their own customer channel, and of membership changes in a channel
    of unknown kind only their own."""
    if audience.channel_kind == "managers":
        return principal.has_any(MANAGER)
    if is_staff(principal):
        return True
    if audience.channel_kind == "customer":
        return audience.customer_id == principal.user_id and principal.has_any(CUSTOMER)
    return audience.subject_id is not None and audience.subject_id == principal.user_id


def frame_text(frame_type: str, data: dict[str, Any], cursor: int) -> str:
    return json.dumps({"type": frame_type, "data": data, "cursor": encode_cursor(cursor)})


def encode_cursor(seq: int) -> str:
    return str(seq)


def decode_cursor(cursor: str) -> int:
    if not cursor.isdigit() or len(cursor) > 18:
        raise InvalidCursor(f"not a cursor: {cursor[:40]!r}")
    return int(cursor)


def chunks(entries: list[FeedEntry], size: int = RECIPIENTS_PER_APPEND) -> list[list[FeedEntry]]:
    return [entries[i : i + size] for i in range(0, len(entries), size)] or [[]]


def users_of(entries: Iterable[FeedEntry]) -> set[str]:
    return {e.user_id for e in entries}


def once_key(event_id: str, chunk: int) -> str:
    return event_id if chunk == 0 else f"{event_id}#{chunk}"


def app_instance_of(channel_arn: str) -> str:
    """`arn:…:app-instance/<id>/channel/<id>` -> the AppInstance ARN."""
    head, sep, _ = channel_arn.partition("/channel/")
    if not sep or "/app-instance/" in head or ":app-instance/" not in head:
        raise ValueError(f"not a channel ARN: {channel_arn!r}")
    return head


def user_arn(app_instance_arn: str, user_id: str) -> str:
    """chat's convention: a person's AppInstanceUser id is their user id."""
    return f"{app_instance_arn}/user/{user_id}"
