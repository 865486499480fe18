"""Read state: marking a channel read, and the channel list with unread counts
and last messages, newest activity first (docs/chat.md, "Unread counts").

A read mark is Belfry's row (per person and channel), written with its
`ChannelRead` event only when it moves forward; Chime's read marker is a
mirror, set afterwards for members: Chime failing (or throttling) is logged
and does not fail the request, since nothing in Belfry reads it and the next
mark sets it again."""

from __future__ import annotations

import time
from typing import Any

from shared.clock import Clock, utc_iso
from shared.errors import NotFound
from shared.events import ChannelRead
from shared.logging import get_logger

from .channels import Channels, channel_view
from .domain import Caller, Channel, announce, channel_id_for, may_read
from .ports import ChatChime, ChatStore, ReadStore
from .unread import advanced, listing_fields, unread_count

log = get_logger("belfry.chat")

MARK_ATTEMPTS = 5  # a mark racing a post's mention or another mark reads again


class Reading:
    def __init__(
        self,
        store: ChatStore,
        reads: ReadStore,
        chime: ChatChime,
        channels: Channels,
        *,
        page_size: int = 50,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.reads = reads
        self.chime = chime
        self.channels = channels
        self.page_size = page_size
        self.clock = clock

    async def mark_read(self, caller: Caller, channel_id: str, up_to: str) -> bool:
        """Mark the channel read up to the message `up_to` of this channel; True
        if the mark moved (False: it was already there or further)."""
        channel, is_member = await self.channels.readable(caller, channel_id)
        seq = await self.reads.message_seq(channel_id, up_to)
        if seq is None:
            raise NotFound("no such message in this channel", code="message_not_found")
        for _ in range(MARK_ATTEMPTS):
            state, summary = await self.reads.state_and_summary(caller.user_id, channel_id)
            after = advanced(state, seq, up_to)
            if after is None:
                log.info("chat.read_ignored", channel_id=channel_id, user_id=caller.user_id)
                return False
            read_at = utc_iso(self.clock())
            event = ChannelRead(
                channel_id=channel_id,
                user_id=caller.user_id,
                up_to=up_to,
                read_at=read_at,
                unread_count=unread_count(summary, after),
                channel_kind=channel.kind,
                customer_id=channel.customer_id,
            )
            if await self.reads.save_read(
                caller.user_id, channel_id, after, read_at, expected=state, event=announce(event)
            ):
                break
        else:
            log.warning("chat.read_busy", channel_id=channel_id, user_id=caller.user_id)
            return False
        log.info("chat.read", channel_id=channel_id, user_id=caller.user_id, up_to=up_to)
        if is_member:
            await self._mirror(channel, caller.user_id)
        return True

    async def _mirror(self, channel: Channel, user_id: str) -> None:
        try:
            await self.chime.mark_read(channel.channel_arn, self.chime.user_arn(user_id))
        except Exception as exc:  # a mirror: Belfry's mark is the one that counts
            log.warning(
                "chat.read_marker_not_mirrored", channel_id=channel.channel_id, error=repr(exc)
            )

    async def list(self, caller: Caller, cursor: str | None) -> dict[str, Any]:
        """The caller's channels with read state, newest activity first: a
        customer their own; staff every channel they may read (one index
        query per shard, whose items carry the summaries and the channels,
        then one batch of the page's read marks and memberships: no call
        grows with the number of channels the caller is in)."""
        if not caller.is_staff:
            own = channel_id_for("customer", caller.user_id)
            channels, summaries, states, _ = await self.reads.rows(
                caller.user_id, [own], memberships=False
            )
            channel = channels.get(own)
            if channel is None or channel.customer_id != caller.user_id:
                return {"channels": [], "next_cursor": None}
            view = channel_view(channel, is_member=True)
            view.update(listing_fields(summaries.get(own), states.get(own)))
            return {"channels": [view], "next_cursor": None}
        page, next_cursor = await self.reads.activity_page(cursor, self.page_size)
        ids = [s.channel_id for s in page]
        summaries = {s.channel_id: s for s in page}
        copied = all(s.channel is not None for s in page)  # else rows written before the copy
        found, _, states, member_of = await self.reads.rows(
            caller.user_id, ids, channels=not copied, summaries=False
        )
        channels = {s.channel_id: s.channel for s in page if s.channel is not None} | found
        views = []
        for channel_id in ids:  # role first: an admin's pages leave out the managers channels
            channel = channels.get(channel_id)
            if channel is None or not may_read(channel, caller):
                continue
            view = channel_view(channel, is_member=channel_id in member_of)
            view.update(listing_fields(summaries.get(channel_id), states.get(channel_id)))
            views.append(view)
        return {"channels": views, "next_cursor": next_cursor}
