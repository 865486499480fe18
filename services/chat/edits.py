"""Editing and deleting messages.

An edit (the sender, within `BELFRY_CHAT_EDIT_WINDOW_SECONDS` of posting) is
checked as a post is (content, mentions), relayed to Chime as the sender
(UpdateChannelMessage, the metadata rewritten), then the index row and
MessageUpdated (and a UserMentioned for each person the edit adds) are
committed together; if the commit fails, Chime gets the old text back.

A deletion (the sender, or a manager: moderation) redacts the Chime message
as chat's service user, then marks the index row deleted, retires the
message's attachments (unreadable from that commit on) and emits
MessageDeleted, in one transaction; the attachments' S3 objects are deleted
right after, and the attachment sweep (`Attachments.sweep_deleted`) deletes
whatever a failure or a crash left. Deleting a deleted message is a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.clock import Clock, utc_iso
from shared.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from shared.events import MessageDeleted, MessageUpdated
from shared.logging import get_logger
from shared.store import Stale

from .attachments import Attachments
from .channels import Channels
from .domain import (
    MANAGER,
    Caller,
    Channel,
    Message,
    MessageMetadata,
    announce,
    check_content,
    check_counts,
    check_mentions,
)
from .mentioning import mention_events, message_fields
from .message_view import MessageRefused
from .people import People
from .ports import ChatChime, ChatStore
from .settings import ChatSettings

log = get_logger("belfry.chat")


def message_not_found() -> NotFound:
    return NotFound("no such message in this channel", code="message_not_found")


def _deleted() -> Conflict:
    return Conflict("the message was deleted", code="message_deleted")


def epoch_of(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def metadata_of(message: Message) -> str:
    return MessageMetadata(
        message.message_id, message.sender_id, list(message.mentions), list(message.attachments)
    ).encode()


def updated_event(channel: Channel, message: Message) -> MessageUpdated:
    return MessageUpdated(**message_fields(channel, message), edited_at=message.edited_at)


def deleted_event(channel: Channel, message: Message) -> MessageDeleted:
    return MessageDeleted(
        message_id=message.message_id,
        channel_id=channel.channel_id,
        channel_arn=channel.channel_arn,
        sender_id=message.sender_id,
        deleted_at=message.deleted_at,
        deleted_by=message.deleted_by,
        channel_kind=channel.kind,
        customer_id=channel.customer_id,
    )


class Edits:
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
    ) -> None:
        self.store = store
        self.chime = chime
        self.people = people
        self.channels = channels
        self.attachments = attachments
        self.settings = settings
        self.clock = clock

    async def _find(
        self, caller: Caller, channel_id: str, message_id: str
    ) -> tuple[Channel, Message]:
        """The channel (404 `channel_not_found` if the caller may not read it, as
        history) and the message (404 `message_not_found`)."""
        channel, _ = await self.channels.readable(caller, channel_id)
        message = await self.store.message(channel_id, message_id)
        if message is None:
            raise message_not_found()
        return channel, message

    async def edit(
        self,
        caller: Caller,
        channel_id: str,
        message_id: str,
        content: str,
        mentions: Sequence[str],
    ) -> dict[str, Any]:
        s = self.settings
        channel, message = await self._find(caller, channel_id, message_id)
        if message.sender_id != caller.user_id:
            raise Forbidden("only its sender may edit a message", code="not_sender")
        if message.deleted:
            raise _deleted()
        if self.clock() > epoch_of(message.posted_at) + s.chat_edit_window_seconds:
            raise Conflict(
                f"messages can be edited for {s.chat_edit_window_seconds} s after posting",
                code="edit_window_closed",
            )
        check_content(content, s.chat_max_content_bytes)
        wanted, _ = check_counts(
            list(mentions), [], max_mentions=s.chat_max_mentions, max_attachments=0
        )
        people = await self.store.people(wanted) if wanted else {}
        mentioned = check_mentions(channel, caller, {u: people.get(u) for u in wanted})
        added = [u for u in mentioned if u not in message.mentions]
        for user_id in added:  # the notifier adds them to the channel lazily
            await self.people.arn(people[user_id])
        edited = replace(
            message, content=content, mentions=tuple(mentioned), edited_at=utc_iso(self.clock())
        )
        metadata = metadata_of(edited)
        edited = replace(edited, metadata_compact='"ref"' in metadata)
        async with self.store.work() as work:
            chime_id = message.chime_message_id
            if chime_id:
                sender_arn = await self.people.arn_of(caller.user_id, caller.role or MANAGER)
                await self._update_chime(channel, sender_arn, chime_id, content, metadata)
                before = metadata_of(message)

                async def restore() -> None:
                    await self.chime.update_message(
                        channel.channel_arn, sender_arn, chime_id, message.content, before
                    )

                work.compensate(restore)
            work.edit_message(edited)
            work.emit(
                announce(updated_event(channel, edited)),
                *mention_events(self.chime, channel, edited, added),
            )
            try:
                await work.commit()
            except Stale:
                raise _deleted() from None
        log.info(
            "chat.message_edited", channel_id=channel_id, message_id=message_id, added=len(added)
        )
        await self._refresh(edited)
        return edited.view()

    async def _update_chime(
        self, channel: Channel, sender_arn: str, chime_id: str, content: str, metadata: str
    ) -> None:
        try:
            await self.chime.update_message(
                channel.channel_arn, sender_arn, chime_id, content, metadata
            )
        except MessageRefused as exc:
            log.warning("chat.edit_refused_by_chime", channel_id=channel.channel_id, code=exc.code)
            if exc.code == "ForbiddenException":
                raise Forbidden(
                    "the sender is no longer a member of the channel", code="not_a_member"
                ) from None
            if exc.code in ("BadRequestException", "NotFoundException"):
                raise _deleted() from None
            raise ServiceUnavailable(
                "the chat backend refused the edit, try again", code="chime_unavailable"
            ) from None

    async def delete(self, caller: Caller, channel_id: str, message_id: str) -> bool:
        """True when this call deleted it; False when it was already deleted."""
        channel, message = await self._find(caller, channel_id, message_id)
        if message.deleted:
            return False
        if message.sender_id != caller.user_id and not caller.is_manager:
            raise Forbidden("only its sender or a manager may delete a message", code="not_sender")
        now = self.clock()
        gone = replace(message, deleted_at=utc_iso(now), deleted_by=caller.user_id)
        ids = [str(ref["attachment_id"]) for ref in message.attachments]
        found = await self.store.attachments(ids) if ids else {}
        retired = [a for a in found.values() if a.message_id == message.message_id]
        async with self.store.work() as work:
            if message.chime_message_id:
                await self.chime.redact_message(channel.channel_arn, message.chime_message_id)
            work.delete_message(gone)
            for attachment in retired:
                work.retire_attachment(attachment.attachment_id, message.message_id, int(now))
            work.emit(announce(deleted_event(channel, gone)))
            try:
                await work.commit()
            except Stale:
                again = await self.store.message(channel_id, message_id)
                if again is not None and again.deleted:
                    return False  # someone else deleted it meanwhile: the same outcome
                raise Conflict(
                    "the message changed meanwhile, try again", code="message_changed"
                ) from None
        log.info(
            "chat.message_deleted",
            channel_id=channel_id,
            message_id=message_id,
            moderated=caller.user_id != message.sender_id,
            attachments=len(retired),
        )
        await self._refresh(gone)
        await self.attachments.sweep_deleted([replace(a, deleted=True) for a in retired])
        return True

    async def _refresh(self, message: Message) -> None:
        """The channel list's `last_message`, after the commit (best effort: a
        failure is logged; the next post replaces it anyway)."""
        try:
            await self.store.refresh_last_message(message)
        except Exception as exc:
            log.warning(
                "chat.last_message_not_refreshed", message_id=message.message_id, error=repr(exc)
            )
