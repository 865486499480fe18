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
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from services.notifier.adapters.chime import ChimeRejected
from services.notifier.domain import (
    app_instance_of,
    audience_of,
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
    """Per replica: an event that may concern a session here is watched until the
    durable consumer (in this process or a peer) has written it into feeds."""

    def __init__(self, *, watcher: ReceiptWatcher, hub: Wakeable) -> None:
        self._watcher = watcher
        self._hub = hub

    async def __call__(self, envelope: Envelope) -> None:
        if self._hub.interested(audience_of(envelope.data)):
            self._watcher.watch(once_key(envelope.event_id, 0))


class ReceiptWatcher:
    """Wakes this replica's sessions for appends made by a peer. A watched key
    is first given `grace_seconds` to be written here (then its rows went to the
    sessions as they were committed, at no cost); after that the oldest due keys
    are looked up together, at most one BatchGetItem of 100 keys per
    `interval_seconds`, so a backlog never turns into a storm of reads."""

    def __init__(
        self,
        *,
        feed: Feed,
        hub: Wakeable,
        interval_seconds: float = 0.1,
        grace_seconds: float = 0.25,
        give_up_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed = feed
        self._hub = hub
        self._interval = interval_seconds
        self._grace = grace_seconds
        self._give_up = give_up_seconds
        self._clock = clock
        self._pending: dict[str, tuple[float, float]] = {}  # key -> (next look, give up)
        self._wake = asyncio.Event()

    def watch(self, key: str) -> None:
        if not self._feed.written_here(key) and key not in self._pending:
            now = self._clock()
            self._pending[key] = (now + self._grace, now + self._give_up)
            self._wake.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception as exc:  # the next round tries again
                log.warning("fanout.receipts_failed", error=repr(exc))
            if not self._pending:
                self._wake.clear()

    async def check(self) -> None:
        now = self._clock()
        due: list[str] = []
        for key, (look, give_up) in list(self._pending.items()):
            if self._feed.written_here(key):
                del self._pending[key]
            elif give_up < now:
                log.warning("fanout.feed_not_written", key=key)
                del self._pending[key]
            elif look <= now and len(due) < 100:
                due.append(key)
        if not due:
            return
        found = await self._feed.receipts(due)
        for key in due:
            users = found.get(key)
            if users is not None:
                self._pending.pop(key, None)
                self._hub.poke(users)
            elif key in self._pending:
                self._pending[key] = (now + 2 * self._grace, self._pending[key][1])
