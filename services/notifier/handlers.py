"""The notifier's event handlers, and the table of which queue feeds which.

notifier.mentions  UserMentioned -> join the channel if needed, inbox entry,
                   ChannelJoined(reason=mention) through the outbox
notifier.feed      MessagePosted, UserMentioned, ChannelJoined, ChannelLeft -> feed
                   rows (and the membership view: ChannelJoined adds, ChannelLeft
                   removes, so who left gets no more frames of the channel)
notifier.fanout    the same events, to every replica -> wake the sessions
                   whose feeds the durable consumer wrote; RoomUpdated -> this
                   replica's room board -> `room.updated` to every session
                   (ephemeral: no feed, no cursor, never replayed);
                   ChannelLeft also drops who left from this replica's view;
                   UserTyping -> `typing` frames (typing_relay.py, ephemeral)
"""

from __future__ import annotations

import contextlib
from typing import Any

from shared.bus import RejectEvent
from shared.clock import utc_iso
from shared.events import (
    ChannelJoined,
    ChannelLeft,
    ChannelRead,
    Envelope,
    EventData,
    MessageDeleted,
    MessagePosted,
    MessageUpdated,
    Producer,
    RoomUpdated,
    UserMentioned,
    UserTyping,
)
from shared.logging import get_logger
from shared.metrics import Counter
from shared.topology import HandlerTable

from .domain import app_instance_of, audience_of, chunks, entries_for, once_key, user_arn, users_of
from .fanout import ReceiptWatcher
from .joins import JoinFailed
from .ports import (
    ChimeRejected,
    Claims,
    Feed,
    Joiner,
    Members,
    MentionInbox,
    RoomUpdates,
    Wakeable,
)
from .typing_relay import on_user_typing

log = get_logger("belfry.notifier")

MENTIONS_QUEUE = "notifier.mentions"
FEED_QUEUE = "notifier.feed"
FANOUT_QUEUE = "notifier.fanout"  # per replica: notifier.fanout.<instance id>
announce = Producer("notifier")

LAZY_JOINS = Counter(
    "belfry_notifier_lazy_joins_total", "Managers added to a channel because they were mentioned."
)
MENTIONS_RECORDED = Counter(
    "belfry_notifier_mentions_recorded_total", "Mentions written to people's inboxes."
)


# --- notifier.mentions: lazy joins and the mention inbox --------------------------------


async def on_user_mentioned(
    event: UserMentioned,
    envelope: Envelope,
    *,
    claims: Claims,
    members: Members,
    mentions: MentionInbox,
    joiner: Joiner,
) -> None:
    """Make a mentioned manager a member (once), record the mention."""
    if event.channel_kind == "managers" and event.mentioned_user_id == event.customer_id:
        raise RejectEvent("customer_in_managers_channel", event.mention_id)
    try:
        arn = member_arn(event)
    except ValueError as exc:
        raise RejectEvent("invalid_channel_arn", str(exc)) from None
    # A claim, not a record in the final transaction: the Chime call sits
    # between, and a redelivery must not make it again.
    if not await claims.claim(MENTIONS_QUEUE, envelope.event_id):
        log.info("mention.duplicate", mention_id=event.mention_id)
        return
    try:
        joined = None
        if not await members.is_member(event.channel_id, event.mentioned_user_id):
            await joiner.join(event.channel_arn, arn)
            joined = _joined_event(envelope, event)
        at = utc_iso(envelope.occurred_at)
        recorded = await mentions.record(
            event, at, joined=joined, claim=(MENTIONS_QUEUE, envelope.event_id)
        )
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await claims.release(MENTIONS_QUEUE, envelope.event_id)
        if isinstance(exc, JoinFailed | ChimeRejected):
            raise RejectEvent("join_refused", str(exc)) from exc
        raise
    if recorded.joined:
        LAZY_JOINS.inc()
    if recorded.mention:
        MENTIONS_RECORDED.inc()
    log.info(
        "mention.recorded",
        mention_id=event.mention_id,
        user_id=event.mentioned_user_id,
        joined=recorded.joined,
    )


def _joined_event(envelope: Envelope, mention: UserMentioned) -> Envelope:
    data: dict[str, Any] = {
        "channel_id": mention.channel_id,
        "channel_arn": mention.channel_arn,
        "user_id": mention.mentioned_user_id,
        "reason": "mention",
    }
    # extensions (docs/events.md): who may read the channel
    if mention.channel_kind is not None:
        data["channel_kind"] = mention.channel_kind
    if mention.customer_id is not None:
        data["customer_id"] = mention.customer_id
    return announce(ChannelJoined.model_validate(data), correlation_id=envelope.correlation_id)


def member_arn(mention: UserMentioned) -> str:
    """chat names the AppInstanceUser (`mentioned_user_arn`, docs/events.md);
    older events fall back to chat's convention (the id is the user id)."""
    named = (mention.model_extra or {}).get("mentioned_user_arn")
    if isinstance(named, str) and named.startswith(app_instance_of(mention.channel_arn) + "/user/"):
        return named
    return user_arn(app_instance_of(mention.channel_arn), mention.mentioned_user_id)


# --- notifier.feed: each event once into each recipient's feed ----------------------------


async def on_message_posted(
    event: MessagePosted, envelope: Envelope, *, feed: Feed, members: Members
) -> None:
    await _append(feed, envelope, event, await members.members(event.channel_id))


async def on_mentioned_feed(
    event: UserMentioned, envelope: Envelope, *, feed: Feed, members: Members
) -> None:
    await _append(feed, envelope, event, set())  # only the mentioned person


async def on_channel_joined(
    event: ChannelJoined, envelope: Envelope, *, feed: Feed, members: Members
) -> None:
    await members.add(event.channel_id, event.user_id, event.reason)
    await _append(feed, envelope, event, await members.members(event.channel_id))


async def on_channel_left(
    event: ChannelLeft, envelope: Envelope, *, feed: Feed, members: Members
) -> None:
    """Drop the person from the membership view (idempotent), then a
    `channel.left` frame to them and the remaining members (once per event)."""
    await members.remove(event.channel_id, event.user_id)
    await _append(feed, envelope, event, await members.members(event.channel_id))


async def _append(feed: Feed, envelope: Envelope, data: EventData, members: set[str]) -> None:
    entries = entries_for(envelope.event_id, data, members)
    parts = chunks(entries)
    everyone = users_of(entries)
    # Chunk 0 last: its receipt (naming everyone) means the whole event is in.
    for index in reversed(range(len(parts))):
        notify = everyone if index == 0 else None
        await feed.append(once_key(envelope.event_id, index), parts[index], notify)


async def on_channel_read(
    event: ChannelRead, envelope: Envelope, *, feed: Feed, members: Members
) -> None:
    """A read mark: a `channel.read` frame into the reader's own feed (so that
    their other sessions, and a resume with `?since=`, clear the badge)."""
    await _append(feed, envelope, event, set())


async def on_message_changed(
    event: MessageUpdated | MessageDeleted, envelope: Envelope, *, feed: Feed, members: Members
) -> None:
    """An edit or a deletion: `message.updated` / `message.deleted` feed rows for
    whom `message.posted` went to (resumable with `?since=`, once per event)."""
    await _append(feed, envelope, event, await members.members(event.channel_id))


# --- notifier.fanout: per replica -------------------------------------------------------------


async def on_fanout(
    event: EventData, envelope: Envelope, *, watcher: ReceiptWatcher, hub: Wakeable
) -> None:
    """An event that may concern a session here is watched until the durable
    consumer (in this process or a peer) has written it into feeds."""
    if hub.interested(audience_of(event)):
        watcher.watch(once_key(envelope.event_id, 0))


async def on_fanout_joined(
    event: ChannelJoined,
    envelope: Envelope,
    *,
    watcher: ReceiptWatcher,
    hub: Wakeable,
    members: Members,
) -> None:
    """Every replica adds who joined to its cached member lists at once (so the
    cache can live `BELFRY_NOTIFIER_MEMBERS_CACHE_SECONDS`: a busy manager's many
    quiet channels cost no Query per message), then as `on_fanout`."""
    members.learned(event.channel_id, event.user_id)
    await on_fanout(event, envelope, watcher=watcher, hub=hub)


async def on_fanout_left(
    event: ChannelLeft,
    envelope: Envelope,
    *,
    watcher: ReceiptWatcher,
    hub: Wakeable,
    members: Members,
) -> None:
    """Every replica drops who left from its membership view at once (the
    durable consumer, on whichever replica, deletes the row), then as `on_fanout`."""
    members.forget(event.channel_id, event.user_id)
    await on_fanout(event, envelope, watcher=watcher, hub=hub)


async def on_room_updated(event: RoomUpdated, envelope: Envelope, *, rooms: RoomUpdates) -> None:
    """Onto this replica's room board, never into a feed: every session here
    gets `room.updated` (coalesced per room)."""
    rooms.update(event)


HANDLERS: HandlerTable = {
    MENTIONS_QUEUE: {UserMentioned: on_user_mentioned},
    FEED_QUEUE: {
        MessagePosted: on_message_posted,
        MessageUpdated: on_message_changed,
        MessageDeleted: on_message_changed,
        UserMentioned: on_mentioned_feed,
        ChannelJoined: on_channel_joined,
        ChannelLeft: on_channel_left,
        ChannelRead: on_channel_read,
    },
    FANOUT_QUEUE: {
        MessagePosted: on_fanout,
        MessageUpdated: on_fanout,
        MessageDeleted: on_fanout,
        UserMentioned: on_fanout,
        ChannelJoined: on_fanout_joined,
        ChannelLeft: on_fanout_left,
        ChannelRead: on_fanout,
        RoomUpdated: on_room_updated,
        UserTyping: on_user_typing,
    },
}
