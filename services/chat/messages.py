"""Messages: history, and posting with mentions and attachments.

A post is checked first (who may post, content, mentions, attachments), before
any Chime or S3 write; then relayed to Chime as the sender; then the index
row, the attachments' channel and the events are committed in one
transaction. The Chime message is a compensation of that unit of work: if
the commit fails (an attachment taken by a racing post, DynamoDB failing),
it is deleted again, so that no message exists without its row and events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from shared.clock import Clock, utc_iso
from shared.errors import BelfryError, Conflict
from shared.events import MessagePosted
from shared.logging import get_logger
from shared.store import Stale

from .attachments import Attachments
from .channels import Channels
from .domain import (
    MANAGER,
    Attachment,
    Caller,
    Channel,
    Message,
    MessageMetadata,
    Person,
    announce,
    check_attachments,
    check_content,
    check_counts,
    check_mentions,
    ensure_may_post,
    request_token,
)
from .mentioning import mention_events, message_fields
from .metrics import MENTIONS, MESSAGES_POSTED, MESSAGES_WITHDRAWN, POSTS_REFUSED
from .people import People
from .ports import ChatChime, ChatStore, ReadStore
from .settings import ChatSettings

log = get_logger("belfry.chat")


class Messages:
    def __init__(
        self,
        store: ChatStore,
        chime: ChatChime,
        *,
        people: People,
        channels: Channels,
        attachments: Attachments,
        settings: ChatSettings,
        clock: Clock = time.time,
        reads: ReadStore | None = None,
    ) -> None:
        self.store = store
        self.chime = chime
        self.reads = reads  # the channel summaries and read marks (unread counts)
        self.people = people
        self.channels = channels
        self.attachments = attachments
        self.settings = settings
        self.clock = clock

    async def history(self, caller: Caller, channel_id: str, cursor: str | None) -> dict[str, Any]:
        await self.channels.readable(caller, channel_id)
        page, next_cursor = await self.store.message_page(
            channel_id, cursor, self.settings.chat_page_size
        )
        return {"messages": [m.view() for m in page], "next_cursor": next_cursor}

    async def post(
        self,
        caller: Caller,
        channel_id: str,
        content: str,
        mentions: Sequence[str],
        attachment_ids: Sequence[str],
    ) -> dict[str, Any]:
        try:
            checked = await self._check(caller, channel_id, content, mentions, attachment_ids)
        except BelfryError as exc:
            POSTS_REFUSED.labels(exc.error_code).inc()
            raise
        channel, must_join, people, mentioned, attachments = checked

        # Chime: the sender's user and membership, the mentioned users' users
        # (the notifier adds them lazily), then the message itself
        sender_arn = await self.people.arn_of(caller.user_id, caller.role or MANAGER)
        if must_join:
            await self.channels.join(caller, channel_id)
        for user_id in mentioned:
            await self.people.arn(people[user_id])
        now = self.clock()
        message_id = f"{int(now * 1000):013d}-{uuid.uuid4().hex[:16]}"
        refs = tuple(a.ref() for a in attachments)
        metadata = MessageMetadata(message_id, caller.user_id, mentioned, list(refs)).encode()
        async with self.store.work() as work:
            chime_message_id = await self.chime.send_message(
                channel.channel_arn, sender_arn, content, metadata, request_token("msg", message_id)
            )
            work.compensate(lambda: self._withdraw(channel, chime_message_id))
            message = Message(
                message_id=message_id,
                channel_id=channel_id,
                sender_id=caller.user_id,
                content=content,
                posted_at=utc_iso(now),
                chime_message_id=chime_message_id,
                mentions=tuple(mentioned),
                attachments=refs,
                metadata_compact='"ref"' in metadata,
            )
            work.save_message(message)
            if self.reads is not None:  # numbered after Chime took it: few gaps
                work.touch_channel(message, await self.reads.next_seq(channel_id))
            for attachment in attachments:
                work.attach(attachment, channel_id, message_id)
            work.emit(*self._events(channel, message))
            try:
                await work.commit()
            except Stale:
                raise Conflict(
                    "an attachment was used by another message meanwhile",
                    code="attachment_refused",
                ) from None
        MESSAGES_POSTED.labels(channel.kind).inc()
        MENTIONS.inc(len(mentioned))
        log.info(
            "chat.message_posted",
            channel_id=channel_id,
            message_id=message_id,
            mentions=len(mentioned),
            attachments=len(refs),
        )
        return message.view()

    def _events(self, channel: Channel, message: Message) -> list[Any]:
        posted = MessagePosted(**message_fields(channel, message))
        return [announce(posted), *mention_events(self.chime, channel, message, message.mentions)]

    async def _check(
        self,
        caller: Caller,
        channel_id: str,
        content: str,
        mentions: Sequence[str],
        attachment_ids: Sequence[str],
    ) -> tuple[Channel, bool, dict[str, Person], list[str], list[Attachment]]:
        """Everything that can refuse a post, before any Chime or S3 write."""
        s = self.settings
        channel, is_member = await self.channels.readable(caller, channel_id)
        must_join = ensure_may_post(channel, caller, is_member=is_member)
        check_content(content, s.chat_max_content_bytes)
        wanted, wanted_attachments = check_counts(
            list(mentions),
            list(attachment_ids),
            max_mentions=s.chat_max_mentions,
            max_attachments=s.chat_max_attachments,
        )
        people = await self.store.people(wanted) if wanted else {}
        mentioned = check_mentions(channel, caller, {u: people.get(u) for u in wanted})
        found = await self.store.attachments(wanted_attachments) if wanted_attachments else {}
        usable = check_attachments(
            wanted_attachments, await self.attachments.confirmed(found), caller.user_id
        )
        return channel, must_join, people, mentioned, usable

    async def _withdraw(self, channel: Channel, chime_message_id: str) -> None:
        """The index refused the message: take it back from Chime."""
        MESSAGES_WITHDRAWN.inc()
        await self.chime.delete_message(channel.channel_arn, chime_message_id)
