"""Channels as people see them: the list (a customer sees their own, a
manager every channel, an admin every customer channel), who may read one,
joining by hand, and the memberships the notifier's lazy joins announce."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shared.clock import Clock
from shared.errors import Forbidden
from shared.events import ChannelJoined, Envelope
from shared.logging import get_logger

from .domain import (
    MANAGER,
    Caller,
    Channel,
    announce,
    channel_id_for,
    ensure_readable,
    may_read,
)
from .people import People
from .ports import ChatChime, ChatStore
from .roles import membership

log = get_logger("belfry.chat")


def channel_view(channel: Channel, *, is_member: bool) -> dict[str, Any]:
    return {
        "channel_id": channel.channel_id,
        "channel_arn": channel.channel_arn,
        "kind": channel.kind,
        "name": channel.name,
        "customer_id": channel.customer_id,
        "manager_id": channel.manager_id,
        "is_member": is_member,
    }


def joined(channel: Channel, user_id: str, reason: str) -> Envelope:
    return membership(ChannelJoined, channel, user_id, reason)


class Channels:
    def __init__(
        self,
        store: ChatStore,
        chime: ChatChime,
        people: People,
        *,
        page_size: int = 50,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.chime = chime
        self.people = people
        self.page_size = page_size
        self.clock = clock

    async def list(self, caller: Caller, cursor: str | None) -> dict[str, Any]:
        if not caller.is_staff:
            own = await self.store.channel(channel_id_for("customer", caller.user_id))
            mine = own is not None and own.customer_id == caller.user_id
            channels = [channel_view(own, is_member=True)] if own is not None and mine else []
            return {"channels": channels, "next_cursor": None}
        page, next_cursor = await self.store.channel_page(cursor, self.page_size)
        member_of = await self.store.channels_of(caller.user_id)
        return {  # role first: an admin's pages leave out the managers channels
            "channels": [
                channel_view(c, is_member=c.channel_id in member_of)
                for c in page
                if may_read(c, caller)
            ],
            "next_cursor": next_cursor,
        }

    async def readable(self, caller: Caller, channel_id: str) -> tuple[Channel, bool]:
        """The channel and whether the caller is a member; 404 if they may not read it."""
        channel, is_member = await asyncio.gather(
            self.store.channel(channel_id), self.store.is_member(channel_id, caller.user_id)
        )
        is_member = is_member and channel is not None
        return ensure_readable(channel, caller), is_member

    async def join(self, caller: Caller, channel_id: str) -> bool:
        """Add a manager to a channel (idempotent); True if they were not a member."""
        if caller.role != MANAGER:
            raise Forbidden("only managers join channels", code="forbidden")
        channel, is_member = await self.readable(caller, channel_id)
        if is_member:
            return False
        arn = await self.people.arn_of(caller.user_id, MANAGER)
        async with self.store.work() as work:
            await self.chime.add_member(channel.channel_arn, arn)

            async def undo() -> None:
                if not await self.store.is_member(channel_id, caller.user_id):
                    await self.chime.remove_member(channel.channel_arn, arn)

            work.compensate(undo)
            work.add_member(channel_id, caller.user_id, "manual", int(self.clock()))
            work.emit(joined(channel, caller.user_id, "manual"))
            await work.commit()
        log.info("chat.joined", channel_id=channel_id, user_id=caller.user_id)
        return True

    async def record_join(self, event: ChannelJoined, envelope: Envelope, consumer: str) -> None:
        """A ChannelJoined from another service (the notifier's lazy joins): keep
        the membership, once per event. chat's own joins were written with
        their event. An event about a channel chat does not know can never
        apply: it is refused (to the dead-letter queue), not acknowledged."""
        if envelope.producer == announce.name:
            return
        channel = await self.store.channel(event.channel_id)
        if channel is None or channel.channel_arn != event.channel_arn:
            raise UnknownChannel(event.channel_id)
        async with self.store.work() as work:
            work.add_member(event.channel_id, event.user_id, event.reason, int(self.clock()))
            work.once(consumer, envelope.event_id)
            if await work.commit():
                log.info(
                    "chat.membership_recorded", channel_id=event.channel_id, user_id=event.user_id
                )


class UnknownChannel(Exception):
    """A membership for a channel chat has no record of (or under another ARN)."""
