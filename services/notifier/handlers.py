"""The notifier's event handlers: lazy joins + the mention inbox, the per-user
feed, and this replica's wake-ups of its WebSocket sessions.

    notifier.mentions  UserMentioned -> join the channel if needed, inbox entry,
                       ChannelJoined(reason=mention) through the outbox
    notifier.feed      MessagePosted, UserMentioned, ChannelJoined -> feed rows
                       (and the membership view, from ChannelJoined)
    notifier.fanout    the same events, to every replica -> wake the sessions
                       whose feeds the durable consumer wrote
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from prometheus_client import Counter

from services.notifier.adapters.chime import ChimeRejected
from services.notifier.domain import (
    app_instance_of,
    chunks,
    entries_for,
    once_key,
    user_arn,
    users_of,
)
from services.notifier.joins import JoinFailed
from services.notifier.ports import Claims, Feed, Joiner, Members, Mentions, UnitOfWork, Wakeable
from shared.bus import RejectEvent
from shared.dynamo import ConditionFailed, TransactItem
from shared.events import ChannelJoined, Envelope, UserMentioned
from shared.logging import get_logger

log = get_logger("belfry.notifier")

MENTIONS_CONSUMER = "notifier.mentions"

LAZY_JOINS = Counter(
    "belfry_notifier_lazy_joins_total", "Managers added to a channel because they were mentioned."
)
MENTIONS_RECORDED = Counter(
    "belfry_notifier_mentions_recorded_total", "Mentions written to people's inboxes."
)


class MentionHandler:
    """UserMentioned: make a mentioned manager a member (once), record the mention."""

    def __init__(
        self,
        *,
        claims: Claims,
        store: UnitOfWork,
        members: Members,
        mentions: Mentions,
        joiner: Joiner,
    ) -> None:
        self._claims = claims
        self._store = store
        self._members = members
        self._mentions = mentions
        self._joiner = joiner

    async def __call__(self, envelope: Envelope) -> None:
        mention = envelope.data
        if not isinstance(mention, UserMentioned):
            raise RejectEvent("unexpected_event", envelope.type)
        if mention.channel_kind == "managers" and mention.mentioned_user_id == mention.customer_id:
            raise RejectEvent("customer_in_managers_channel", mention.mention_id)
        try:
            arn = member_arn(mention)
        except ValueError as exc:
            raise RejectEvent("invalid_channel_arn", str(exc)) from None
        # A claim, not a record in the final transaction: the Chime call sits
        # between, and a redelivery must not make it again.
        if not await self._claims.claim(MENTIONS_CONSUMER, envelope.event_id):
            log.info("mention.duplicate", mention_id=mention.mention_id)
            return
        try:
            await self._handle(envelope, mention, arn)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self._claims.release(MENTIONS_CONSUMER, envelope.event_id)
            if isinstance(exc, JoinFailed | ChimeRejected):
                raise RejectEvent("join_refused", str(exc)) from exc
            raise

    async def _handle(self, envelope: Envelope, mention: UserMentioned, arn: str) -> None:
        joined = False
        if not await self._members.is_member(mention.channel_id, mention.mentioned_user_id):
            await self._joiner.join(mention.channel_arn, arn)
            joined = True
        at = envelope.occurred_at.isoformat().replace("+00:00", "Z")
        parts: dict[str, TransactItem] = {"record": self._mentions.record_item(mention, at)}
        if joined:
            parts["join"] = self._members.join_item(
                mention.channel_id, mention.mentioned_user_id, "mention"
            )
        completion = self._claims.completion(MENTIONS_CONSUMER, envelope.event_id)
        for _ in range(3):
            names = list(parts)
            events = [self._joined_event(envelope, mention)] if "join" in parts else []
            try:
                await self._store.commit([*parts.values(), completion], events=events)
            except ConditionFailed as exc:
                # The mention or the membership is recorded already (a peer won a
                # race): keep what is new, and announce only a membership we made.
                failed = [names[i] for i in exc.indexes if i < len(names)]
                if len(names) in exc.indexes or not failed:
                    raise
                for name in failed:
                    del parts[name]
                continue
            break
        join = parts.get("join")
        record = parts.get("record")
        if join is not None:
            LAZY_JOINS.inc()
        if record is not None:
            MENTIONS_RECORDED.inc()
        log.info(
            "mention.recorded",
            mention_id=mention.mention_id,
            user_id=mention.mentioned_user_id,
            joined=join is not None,
        )

    @staticmethod
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
        return Envelope.new(
            ChannelJoined.model_validate(data),
            producer="notifier",
            correlation_id=envelope.correlation_id,
        )


def member_arn(mention: UserMentioned) -> str:
    """chat names the AppInstanceUser (`mentioned_user_arn`, docs/events.md);
    older events fall back to chat's convention (the id is the user id)."""
    named = (mention.model_extra or {}).get("mentioned_user_arn")
    if isinstance(named, str) and named.startswith(app_instance_of(mention.channel_arn) + "/user/"):
        return named
    return user_arn(app_instance_of(mention.channel_arn), mention.mentioned_user_id)


class FeedHandler:
    """The durable feed writer: each event once into each recipient's feed."""

    def __init__(self, *, feed: Feed, members: Members) -> None:
        self._feed = feed
        self._members = members

    async def __call__(self, envelope: Envelope) -> None:
        data = envelope.data
        channel_id = getattr(data, "channel_id", None)
        if not isinstance(channel_id, str):
            raise RejectEvent("unexpected_event", envelope.type)
        if isinstance(data, ChannelJoined):
            await self._members.add(channel_id, data.user_id, data.reason)
        members: set[str] = set()
        if not isinstance(data, UserMentioned):
            members = await self._members.members(channel_id)
        entries = entries_for(envelope.event_id, data, members)
        parts = chunks(entries)
        everyone = users_of(entries)
        # Chunk 0 last: its receipt (naming everyone) means the whole event is in.
        for index in reversed(range(len(parts))):
            notify = everyone if index == 0 else None
            await self._feed.append(once_key(envelope.event_id, index), parts[index], notify)


class FanoutHandler:
    """Per replica: once the durable consumer (here or on a peer) has written an
    event into feeds, wake this replica's sessions of those users."""

    def __init__(self, *, feed: Feed, hub: Wakeable, wait_seconds: float = 30.0) -> None:
        self._feed = feed
        self._hub = hub
        self._wait = wait_seconds

    async def __call__(self, envelope: Envelope) -> None:
        if not len(self._hub):  # no sessions on this replica: nobody to wake
            return
        key = once_key(envelope.event_id, 0)
        here = self._feed.written_here(key)
        deadline = time.monotonic() + self._wait
        delay = 0.02
        try:
            while True:
                # Written by this process: its writer has woken the sessions.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(here.wait(), delay)
                if here.is_set():
                    return
                users = await self._feed.receipt(key)
                if users is not None:
                    self._hub.poke(users)
                    return
                if time.monotonic() > deadline:
                    log.warning("fanout.feed_not_written", event_id=envelope.event_id)
                    return
                delay = min(delay * 2, 0.5)
        finally:
            self._feed.forget(key)
