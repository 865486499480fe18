"""Attachments: uploads (multipart through chat, or a presigned POST straight
to S3), downloads through a short-lived presigned GET for people who may read
the channel, and the sweep of uploads never attached to a message."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from shared.clock import Clock
from shared.errors import BelfryError, NotFound
from shared.logging import get_logger
from shared.runtime import every

from .channels import Channels
from .domain import Attachment, Caller, check_upload, clean_file_name
from .metrics import ATTACHMENT_BYTES
from .ports import AttachmentStore, ChatStore
from .settings import ChatSettings

log = get_logger("belfry.chat")


def not_found() -> NotFound:
    return NotFound("no such attachment", code="attachment_not_found")


class Attachments:
    def __init__(
        self,
        store: ChatStore,
        bucket: AttachmentStore,
        channels: Channels,
        settings: ChatSettings,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.channels = channels
        self.settings = settings
        self.clock = clock

    @property
    def max_bytes(self) -> int:
        return self.settings.chat_max_attachment_bytes

    def _new(
        self, caller: Caller, name: str | None, content_type: str, size: int, *, uploaded: bool
    ) -> Attachment:
        check_upload(
            content_type,
            size,
            allowed=self.settings.chat_allowed_content_types,
            max_bytes=self.max_bytes,
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
        attachment = self._new(caller, name, content_type, size, uploaded=True)
        await self.bucket.put(attachment.key, body, content_type, size)
        try:
            await self.store.save_attachment(attachment, int(self.clock()))
        except Exception:
            await self.bucket.delete(attachment.key)
            raise
        ATTACHMENT_BYTES.labels("multipart").observe(size)
        log.info("chat.attachment_uploaded", attachment_id=attachment.attachment_id, size=size)
        return attachment.ref()

    async def upload_form(
        self, caller: Caller, name: str | None, content_type: str, size: int
    ) -> dict[str, Any]:
        attachment = self._new(caller, name, content_type, size, uploaded=False)
        seconds = self.settings.chat_upload_url_seconds
        form = await self.bucket.upload_form(attachment.key, content_type, size, seconds)
        await self.store.save_attachment(attachment, int(self.clock()))
        ATTACHMENT_BYTES.labels("presigned_post").observe(size)
        return {**attachment.ref(), "upload": form, "expires_in": seconds}

    async def confirmed(self, attachments: dict[str, Attachment]) -> dict[str, Attachment]:
        """A presigned-POST upload counts once its object is in S3 at its size."""
        found = dict(attachments)
        for attachment_id, attachment in attachments.items():
            if not attachment.uploaded:
                size = await self.bucket.size_of(attachment.key)
                if size is not None and size == attachment.size:
                    found[attachment_id] = replace(attachment, uploaded=True)
        return found

    async def download_url(self, caller: Caller, attachment_id: str) -> str:
        attachment = (await self.store.attachments([attachment_id])).get(attachment_id)
        if attachment is None or attachment.deleted:  # its message was deleted
            raise not_found()
        if attachment.channel_id is None:
            if attachment.owner_id != caller.user_id or not attachment.uploaded:
                raise not_found()
        else:
            try:
                await self.channels.readable(caller, attachment.channel_id)
            except NotFound:
                raise not_found() from None
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
        for attachment in await self.store.unattached_before(before):
            if not await self.store.forget_unattached(attachment.attachment_id):
                continue
            try:
                await self.bucket.delete(attachment.key)
            except BelfryError as exc:
                log.warning("chat.sweep_object_left", key=attachment.key, error=exc.message)
            swept += 1
        if swept:
            log.info("chat.unattached_swept", count=swept)
        return swept

    async def sweep_deleted(self, found: list[Attachment] | None = None) -> int:
        """Delete the objects, then the rows, of deleted messages' attachments
        (`found`: a deletion's own, right after its commit; None: every one
        left, found by keyed queries). What fails stays for the next sweep."""
        if found is None:
            found = await self.store.deleted_attachments()
        swept = 0
        for attachment in found:
            try:
                await self.bucket.delete(attachment.key)
                await self.store.forget_deleted(attachment.attachment_id)
            except Exception as exc:
                log.warning("chat.sweep_deleted_left", key=attachment.key, error=repr(exc))
                continue
            swept += 1
        if swept:
            log.info("chat.deleted_attachments_swept", count=swept)
        return swept

    async def _sweep(self) -> None:
        try:
            await self.sweep_unattached()
        finally:
            await self.sweep_deleted()

    async def run_sweeper(self) -> None:
        """A background loop of every replica (the conditional deletes make that safe)."""
        await every(self.settings.chat_sweep_interval_seconds, self._sweep, name="chat.sweep")
