"""chat's use cases: assignments, channel lists, joins, history, posting, attachments.

The object `bootstrap.build` wires and route handlers reach through
`service_state(request, "chat")`. Every use case validates first, then calls
Chime/S3, then commits its state with the events that announce it in one
DynamoDB transaction (`Store.commit`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.dynamo import ConditionFailed, TransactItem, transact
from shared.errors import BelfryError, Conflict, Forbidden, NotFound, Unprocessable
from shared.events import (
    AttachmentRef,
    ChannelJoined,
    Envelope,
    EventData,
    MessagePosted,
    UserMentioned,
)
from shared.logging import get_logger
from shared.store import Store

from .adapters.dynamo import ChatTables
from .domain import (
    CUSTOMER,
    MANAGER,
    Attachment,
    Caller,
    Channel,
    ChannelKind,
    MessageMetadata,
    Person,
    Role,
    channel_id_for,
    check_attachments,
    check_content,
    check_counts,
    check_mentions,
    check_upload,
    clean_file_name,
    ensure_may_post,
    ensure_readable,
    excerpt,
    request_token,
)
from .metrics import (
    ATTACHMENT_BYTES,
    MENTIONS,
    MESSAGES_POSTED,
    MESSAGES_WITHDRAWN,
    POSTS_REFUSED,
)
from .ports import AttachmentStore, ChatChime
from .settings import ChatSettings

log = get_logger("belfry.chat")
PRODUCER = "chat"
ROLE_CACHE_SIZE = 50_000


def _event(data: EventData) -> Envelope:
    return Envelope.new(data, producer=PRODUCER)


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


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": row["message_id"],
        "channel_id": row["channel_id"],
        "chime_message_id": row.get("chime_message_id"),
        "sender_id": row["sender_id"],
        "content": row["content"],
        "mentions": list(row.get("mentions") or []),
        "attachments": list(row.get("attachments") or []),
        "posted_at": row["posted_at"],
    }


@dataclass
class _Work:
    """What an assignment will commit: rows and the ChannelJoined events."""

    chat: ChatService
    now: int
    items: list[TransactItem] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    added: list[tuple[Channel, str, str]] = field(default_factory=list)  # made in Chime

    def joined(self, channel: Channel, user_id: str) -> None:
        self.items.append(
            self.chat.tables.put_membership(channel.channel_id, user_id, "assignment", self.now)
        )
        self.events.append(
            _event(
                ChannelJoined(
                    channel_id=channel.channel_id,
                    channel_arn=channel.channel_arn,
                    user_id=user_id,
                    reason="assignment",
                )
            )
        )


@dataclass
class ChatService:
    settings: ChatSettings
    tables: ChatTables
    chime: ChatChime
    bucket: AttachmentStore
    store: Store
    clock: Callable[[], float] = time.time
    _roles: dict[str, Role] = field(default_factory=dict)  # who was recorded already

    # --- people -------------------------------------------------------------

    async def caller(self, user_id: str, role: Role | None) -> Caller:
        """The caller, recorded with their role (a DynamoDB write the first time,
        never a Chime call: the AppInstanceUser is made when first needed)."""
        if role is None:
            raise Forbidden("chat is for customers and managers", code="no_chat_role")
        if self._roles.get(user_id) != role:
            known = await self.tables.person(user_id)
            if known is None or known.role != role:
                await self.tables.save_person(Person(user_id, role))
            if len(self._roles) >= ROLE_CACHE_SIZE:  # bounded: forget the oldest half
                for stale in list(self._roles)[: ROLE_CACHE_SIZE // 2]:
                    del self._roles[stale]
            self._roles[user_id] = role
        return Caller(user_id, role)

    async def _arn(self, person: Person) -> str:
        if person.arn:
            return person.arn
        arn = await self.chime.ensure_user(person.user_id)
        await self.tables.save_person(Person(person.user_id, person.role, arn))
        return arn

    async def _person_arn(self, user_id: str, role: Role) -> str:
        known = await self.tables.person(user_id)
        return await self._arn(known or Person(user_id, role))

    # --- assignments -------------------------------------------------------------

    async def assign(self, caller: Caller, customer_id: str, manager_id: str) -> dict[str, Any]:
        if customer_id == manager_id:
            raise Unprocessable("a customer cannot be their own manager", code="invalid_assignment")
        people = await self.tables.people([customer_id, manager_id])
        customer = people.get(customer_id) or Person(customer_id, CUSTOMER)
        manager = people.get(manager_id) or Person(manager_id, MANAGER)
        if customer.role != CUSTOMER:
            raise Unprocessable(f"{customer_id} is not a customer", code="not_a_customer")
        if manager.role != MANAGER:
            raise Unprocessable(f"{manager_id} is not a manager", code="not_a_manager")
        customer_arn = await self._arn(customer)
        manager_arn = await self._arn(manager)
        work = _Work(self, int(self.clock()))
        customer_channel, previous = await self._customer_channel(
            work, customer_id, customer_arn, manager_id, manager_arn
        )
        managers_channel = await self._managers_channel(work, customer_id, manager_id, manager_arn)
        if work.items:
            try:
                await self.store.commit(work.items, events=work.events)
            except ConditionFailed:
                await self._undo_memberships(work)
                raise Conflict(
                    "the customer was assigned concurrently; retry", code="assignment_changed"
                ) from None
            log.info(
                "chat.assigned", customer_id=customer_id, manager_id=manager_id, previous=previous
            )
        in_customer, in_managers = await asyncio.gather(
            self.tables.is_member(customer_channel.channel_id, caller.user_id),
            self.tables.is_member(managers_channel.channel_id, caller.user_id),
        )
        return {
            "customer_id": customer_id,
            "manager_id": manager_id,
            "previous_manager_id": previous if previous != manager_id else None,
            "customer_channel": channel_view(customer_channel, is_member=in_customer),
            "managers_channel": channel_view(managers_channel, is_member=in_managers),
        }

    async def _customer_channel(
        self, work: _Work, customer_id: str, customer_arn: str, manager_id: str, manager_arn: str
    ) -> tuple[Channel, str | None]:
        """Create the customer channel, or move it to the new manager."""
        channel_id = channel_id_for("customer", customer_id)
        current = await self.tables.channel(channel_id)
        if current is None:
            name = Channel(channel_id, "customer", customer_id, "").name
            arn = await self.chime.create_channel(channel_id, name, [customer_arn, manager_arn])
            channel = Channel(channel_id, "customer", customer_id, arn, manager_id)
            work.items.append(self.tables.put_channel(channel, expected_manager=None))
            work.joined(channel, customer_id)
            work.joined(channel, manager_id)
            return channel, None
        previous = current.manager_id
        if previous == manager_id:
            return current, previous
        channel = Channel(channel_id, "customer", customer_id, current.channel_arn, manager_id)
        await self.chime.add_member(channel.channel_arn, manager_arn)
        work.added.append((channel, manager_id, manager_arn))
        if previous:
            old_arn = await self._person_arn(previous, MANAGER)
            await self.chime.remove_member(channel.channel_arn, old_arn)
            work.items.append(self.tables.delete_membership(channel_id, previous))
        work.items.append(self.tables.put_channel(channel, expected_manager=previous))
        work.joined(channel, manager_id)
        return channel, previous

    async def _managers_channel(
        self, work: _Work, customer_id: str, manager_id: str, manager_arn: str
    ) -> Channel:
        """Create the managers-only channel; the assigned manager is a member."""
        channel_id = channel_id_for("managers", customer_id)
        channel = await self.tables.channel(channel_id)
        if channel is None:
            name = Channel(channel_id, "managers", customer_id, "").name
            arn = await self.chime.create_channel(channel_id, name, [manager_arn])
            channel = Channel(channel_id, "managers", customer_id, arn)
            work.items.append(self.tables.put_channel(channel, expected_manager=None))
            work.joined(channel, manager_id)
        elif not await self.tables.is_member(channel_id, manager_id):
            await self.chime.add_member(channel.channel_arn, manager_arn)
            work.added.append((channel, manager_id, manager_arn))
            work.joined(channel, manager_id)
        return channel

    async def _undo_memberships(self, work: _Work) -> None:
        """A concurrent assignment won: take back the Chime memberships this one
        added that the winner's state does not have, so Chime and chat agree."""
        for channel, user_id, arn in work.added:
            if await self.tables.is_member(channel.channel_id, user_id):
                continue
            try:
                await self.chime.remove_member(channel.channel_arn, arn)
            except BelfryError as exc:
                log.error("chat.undo_failed", channel_id=channel.channel_id, error=exc.message)

    # --- channels -------------------------------------------------------------

    async def list_channels(self, caller: Caller, cursor: str | None) -> dict[str, Any]:
        if not caller.is_staff:
            own = await self.tables.channel(channel_id_for("customer", caller.user_id))
            mine = own is not None and own.customer_id == caller.user_id
            channels = [channel_view(own, is_member=True)] if own is not None and mine else []
            return {"channels": channels, "next_cursor": None}
        page, next_cursor = await self.tables.list_channels(cursor, self.settings.chat_page_size)
        member_of = await self.tables.channels_of(caller.user_id)
        return {
            "channels": [channel_view(c, is_member=c.channel_id in member_of) for c in page],
            "next_cursor": next_cursor,
        }

    async def _readable(self, caller: Caller, channel_id: str) -> tuple[Channel, bool]:
        channel, is_member = await asyncio.gather(
            self.tables.channel(channel_id), self.tables.is_member(channel_id, caller.user_id)
        )
        is_member = is_member and channel is not None
        return ensure_readable(channel, caller, is_member=is_member), is_member

    async def join(self, caller: Caller, channel_id: str) -> bool:
        """Add a manager to a channel (idempotent); True if they were not a member."""
        if caller.role != MANAGER:
            raise Forbidden("only managers join channels", code="forbidden")
        channel, is_member = await self._readable(caller, channel_id)
        if is_member:
            return False
        arn = await self._person_arn(caller.user_id, MANAGER)
        await self.chime.add_member(channel.channel_arn, arn)
        await self.store.commit(
            [self.tables.put_membership(channel_id, caller.user_id, "manual", int(self.clock()))],
            events=[
                _event(
                    ChannelJoined(
                        channel_id=channel_id,
                        channel_arn=channel.channel_arn,
                        user_id=caller.user_id,
                        reason="manual",
                    )
                )
            ],
        )
        log.info("chat.joined", channel_id=channel_id, user_id=caller.user_id)
        return True

    async def history(self, caller: Caller, channel_id: str, cursor: str | None) -> dict[str, Any]:
        await self._readable(caller, channel_id)
        rows, next_cursor = await self.tables.list_messages(
            channel_id, cursor, self.settings.chat_page_size
        )
        return {"messages": [message_view(r) for r in rows], "next_cursor": next_cursor}

    # --- posting -------------------------------------------------------------

    async def post(
        self,
        caller: Caller,
        channel_id: str,
        content: str,
        mentions: Sequence[str],
        attachment_ids: Sequence[str],
    ) -> dict[str, Any]:
        try:
            checked = await self._check_post(caller, channel_id, content, mentions, attachment_ids)
        except BelfryError as exc:
            POSTS_REFUSED.labels(exc.error_code).inc()
            raise
        channel, must_join, people, mentioned, attachments = checked

        # Chime: the sender's user and membership, the mentioned users' users
        #    (the notifier adds them lazily), then the message itself
        sender_arn = await self._person_arn(caller.user_id, caller.role or MANAGER)
        if must_join:
            await self.join(caller, channel_id)
        for user_id in mentioned:
            await self._arn(people[user_id])
        now = self.clock()
        posted_at = datetime.fromtimestamp(now, UTC)
        message_id = f"{int(now * 1000):013d}-{uuid.uuid4().hex[:16]}"
        refs = [a.ref() for a in attachments]
        metadata = MessageMetadata(message_id, caller.user_id, mentioned, refs).encode()
        chime_message_id = await self.chime.send_message(
            channel.channel_arn, sender_arn, content, metadata, request_token("msg", message_id)
        )

        # the index row, the attachments' channel and the events, atomically
        row = {
            "channel_id": channel_id,
            "message_id": message_id,
            "chime_message_id": chime_message_id,
            "sender_id": caller.user_id,
            "content": content,
            "mentions": mentioned,
            "attachments": refs,
            "posted_at": posted_at.isoformat().replace("+00:00", "Z"),
            "metadata_compact": '"ref"' in metadata,
        }
        kind: ChannelKind = channel.kind
        events = [
            _event(
                MessagePosted(
                    message_id=message_id,
                    channel_id=channel_id,
                    channel_arn=channel.channel_arn,
                    sender_id=caller.user_id,
                    content=content,
                    mentions=mentioned,
                    attachments=[AttachmentRef.model_validate(r) for r in refs],
                    posted_at=posted_at,
                    channel_kind=kind,
                    customer_id=channel.customer_id,
                    chime_message_id=chime_message_id,
                )
            )
        ]
        for user_id in mentioned:
            events.append(
                _event(
                    UserMentioned(
                        mention_id=f"{message_id}-{request_token('m', user_id)[2:18]}",
                        message_id=message_id,
                        channel_id=channel_id,
                        channel_arn=channel.channel_arn,
                        mentioned_user_id=user_id,
                        mentioned_by=caller.user_id,
                        excerpt=excerpt(content),
                        channel_kind=kind,
                        customer_id=channel.customer_id,
                        mentioned_user_arn=self.chime.user_arn(user_id),
                    )
                )
            )
        items = [self.tables.put_message(row)]
        items += [self.tables.attach(a, channel_id, message_id) for a in attachments]
        outbox = self.store.outbox
        assert outbox is not None, "chat's store has an outbox"
        rows = [outbox.row(e) for e in events]
        try:
            await transact(self.store.client, [*items, *(r.item(outbox.table) for r in rows)])
        except ConditionFailed:
            await self._withdraw(channel, chime_message_id)
            raise Conflict(
                "an attachment was used by another message meanwhile", code="attachment_refused"
            ) from None
        except Exception:
            await self._withdraw(channel, chime_message_id)
            raise
        try:
            await outbox.dispatch(rows)
        except Exception as exc:  # committed: the outbox relay publishes what is left
            log.warning("chat.dispatch_deferred", message_id=message_id, error=repr(exc))
        MESSAGES_POSTED.labels(kind).inc()
        MENTIONS.inc(len(mentioned))
        log.info(
            "chat.message_posted",
            channel_id=channel_id,
            message_id=message_id,
            mentions=len(mentioned),
            attachments=len(refs),
        )
        return message_view(row)

    async def _check_post(
        self,
        caller: Caller,
        channel_id: str,
        content: str,
        mentions: Sequence[str],
        attachment_ids: Sequence[str],
    ) -> tuple[Channel, bool, dict[str, Person], list[str], list[Attachment]]:
        """Everything that can refuse a post, before any Chime or S3 write."""
        s = self.settings
        channel, is_member = await self._readable(caller, channel_id)
        must_join = ensure_may_post(channel, caller, is_member=is_member)
        check_content(content, s.chat_max_content_bytes)
        wanted, wanted_attachments = check_counts(
            list(mentions),
            list(attachment_ids),
            max_mentions=s.chat_max_mentions,
            max_attachments=s.chat_max_attachments,
        )
        people = await self.tables.people(wanted) if wanted else {}
        mentioned = check_mentions(channel, caller, {u: people.get(u) for u in wanted})
        found = (
            await self.tables.attachments_by_id(wanted_attachments) if wanted_attachments else {}
        )
        found = {k: await self._confirm_upload(v) for k, v in found.items()}
        attachments = check_attachments(wanted_attachments, found, caller.user_id)
        return channel, must_join, people, mentioned, attachments

    async def _withdraw(self, channel: Channel, chime_message_id: str) -> None:
        """The index refused the message: take it back from Chime, so that no
        message exists without its row and its events."""
        MESSAGES_WITHDRAWN.inc()
        try:
            await self.chime.delete_message(channel.channel_arn, chime_message_id)
        except Exception as exc:
            log.error("chat.withdraw_failed", channel_id=channel.channel_id, error=repr(exc))

    async def _confirm_upload(self, attachment: Attachment) -> Attachment:
        """A presigned-POST upload counts once its object is in S3 at its size."""
        if attachment.uploaded:
            return attachment
        size = await self.bucket.size_of(attachment.key)
        if size is None or size != attachment.size:
            return attachment
        return Attachment(**{**attachment.__dict__, "uploaded": True})

    # --- attachments -------------------------------------------------------------

    def _new_attachment(
        self, caller: Caller, name: str | None, content_type: str, size: int, *, uploaded: bool
    ) -> Attachment:
        s = self.settings
        check_upload(
            content_type,
            size,
            allowed=s.chat_allowed_content_types,
            max_bytes=s.chat_max_attachment_bytes,
        )
        attachment_id = uuid.uuid4().hex
        return Attachment(
            attachment_id=attachment_id,
            owner_id=caller.user_id,
            key=f"attachments/{attachment_id}",  # never the file name
            name=clean_file_name(name),
            size=size,
            content_type=content_type,
            uploaded=uploaded,
        )

    async def upload(
        self, caller: Caller, name: str | None, content_type: str, size: int, body: Any
    ) -> dict[str, Any]:
        attachment = self._new_attachment(caller, name, content_type, size, uploaded=True)
        await self.bucket.put(attachment.key, body, content_type, size)
        try:
            await self.tables.put_attachment(attachment, int(self.clock()))
        except Exception:
            await self.bucket.delete(attachment.key)
            raise
        ATTACHMENT_BYTES.labels("multipart").observe(size)
        log.info("chat.attachment_uploaded", attachment_id=attachment.attachment_id, size=size)
        return attachment.ref()

    async def upload_form(
        self, caller: Caller, name: str | None, content_type: str, size: int
    ) -> dict[str, Any]:
        attachment = self._new_attachment(caller, name, content_type, size, uploaded=False)
        seconds = self.settings.chat_upload_url_seconds
        form = await self.bucket.upload_form(attachment.key, content_type, size, seconds)
        await self.tables.put_attachment(attachment, int(self.clock()))
        ATTACHMENT_BYTES.labels("presigned_post").observe(size)
        return {**attachment.ref(), "upload": form, "expires_in": seconds}

    async def download_url(self, caller: Caller, attachment_id: str) -> str:
        attachment = await self.tables.attachment(attachment_id)
        if attachment is None:
            raise NotFound("no such attachment", code="attachment_not_found")
        if attachment.channel_id is None:
            if attachment.owner_id != caller.user_id or not attachment.uploaded:
                raise NotFound("no such attachment", code="attachment_not_found")
        else:
            try:
                await self._readable(caller, attachment.channel_id)
            except NotFound:
                raise NotFound("no such attachment", code="attachment_not_found") from None
        return await self.bucket.download_url(
            attachment.key,
            attachment.name,
            attachment.content_type,
            self.settings.chat_download_url_seconds,
        )

    async def sweep_unattached(self, before: int | None = None) -> int:
        """Delete uploads never attached within the retention (or created before
        `before`): the row first (conditionally, so a message attaching it now
        wins), then the object."""
        if before is None:
            before = int(self.clock()) - self.settings.chat_unattached_retention_seconds
        swept = 0
        for attachment in await self.tables.unattached_before(before):
            if not await self.tables.forget_unattached(attachment.attachment_id):
                continue
            try:
                await self.bucket.delete(attachment.key)
            except BelfryError as exc:
                log.warning("chat.sweep_object_left", key=attachment.key, error=exc.message)
            swept += 1
        if swept:
            log.info("chat.unattached_swept", count=swept)
        return swept

    async def run_sweeper(self) -> None:
        """A background loop of every replica (the conditional deletes make that safe)."""
        while True:
            try:
                await self.sweep_unattached()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("chat.sweep_failed", error=repr(exc))
            await asyncio.sleep(self.settings.chat_sweep_interval_seconds)

    # --- events -------------------------------------------------------------

    async def record_join(self, envelope: Envelope, consumer: str) -> None:
        """A ChannelJoined from another service (the notifier's lazy joins): keep
        the membership. chat's own joins were written with their event."""
        if envelope.producer == PRODUCER or not isinstance(envelope.data, ChannelJoined):
            return
        data = envelope.data
        channel = await self.tables.channel(data.channel_id)
        if channel is None or channel.channel_arn != data.channel_arn:
            log.warning("chat.join_for_unknown_channel", channel_id=data.channel_id)
            return
        item = self.tables.put_membership(
            data.channel_id, data.user_id, data.reason, int(self.clock())
        )
        if await self.store.commit([item], once=(consumer, envelope.event_id)):
            log.info("chat.membership_recorded", channel_id=data.channel_id, user_id=data.user_id)
