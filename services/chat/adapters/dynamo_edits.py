"""Edits and deletions in chat's tables (`services.chat.adapters.dynamo` mixes
these into `DynamoChat` and `ChatWork`).

messages     an edit rewrites content, mentions and `edited_at` (only while
             the row has no `deleted_at`); a deletion removes the content and
             the lists and sets `deleted_at`, `deleted_by`
attachments  a deleted message's attachments get `deleted_at` and move from
             `pending = unattached-<n>` to `pending = deleted-<n>` on the same
             sparse `unattached` index: the sweep's keyed query finds them
             until their S3 object and row are gone
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.dynamo import conditional, from_item, to_item
from shared.store import UnitOfWork

from ..domain import excerpt
from ..message_view import Message

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from ..domain import Attachment

DELETED_SHARDS = 4
DELETED_PREFIX = "deleted-"
LIVE = "attribute_exists(message_id) AND attribute_not_exists(deleted_at)"


def message_from_item(item: Mapping[str, Any]) -> Message:
    v = from_item(item)
    return Message(
        message_id=v["message_id"],
        channel_id=v["channel_id"],
        sender_id=v["sender_id"],
        content=v.get("content") or "",
        posted_at=v["posted_at"],
        chime_message_id=v.get("chime_message_id"),
        mentions=tuple(v.get("mentions") or ()),
        attachments=tuple(v.get("attachments") or ()),
        metadata_compact=bool(v.get("metadata_compact", False)),
        edited_at=v.get("edited_at"),
        deleted_at=v.get("deleted_at"),
        deleted_by=v.get("deleted_by"),
    )


def _message_key(channel_id: str, message_id: str) -> dict[str, Any]:
    return {"channel_id": {"S": channel_id}, "message_id": {"S": message_id}}


class EditQueries:
    """Reads and deletes of `DynamoChat` for edits, deletions and their sweep."""

    _client: DynamoDBClient
    messages: str
    attachments_table: str
    reads: Any  # adapters.reading.ReadTables, or None without the read-state tables

    def _parse_attachment(self, item: Mapping[str, Any]) -> Attachment:
        raise NotImplementedError

    async def message(self, channel_id: str, message_id: str) -> Message | None:
        response = await self._client.get_item(
            TableName=self.messages, Key=_message_key(channel_id, message_id), ConsistentRead=True
        )
        item = response.get("Item")
        return message_from_item(item) if item else None

    async def refresh_last_message(self, message: Message) -> bool:
        """If `message` is its channel's `last_message` in the listing's summary,
        show its edit (the new excerpt) or its deletion (no excerpt, `deleted`).
        False: it is not (a later post), or there is no summary."""
        if self.reads is None:
            return False
        shown: dict[str, Any] = (
            {"NULL": True} if message.deleted else {"S": excerpt(message.content)}
        )
        return await conditional(
            self._client.update_item(
                TableName=self.reads.summaries,
                Key={"channel_id": {"S": message.channel_id}},
                UpdateExpression="SET last_message.excerpt = :e, last_message.deleted = :d",
                ConditionExpression="last_message.message_id = :m",
                ExpressionAttributeValues={
                    ":e": shown,
                    ":d": {"BOOL": message.deleted},
                    ":m": {"S": message.message_id},
                },
            )
        )

    async def deleted_attachments(self, limit: int = 100) -> list[Attachment]:
        """Attachments of deleted messages whose object may still be in S3."""
        found: list[Attachment] = []
        for shard in range(DELETED_SHARDS):
            response = await self._client.query(
                TableName=self.attachments_table,
                IndexName="unattached",
                KeyConditionExpression="pending = :p",
                ExpressionAttributeValues={":p": {"S": f"{DELETED_PREFIX}{shard}"}},
                Limit=limit,
            )
            found += [self._parse_attachment(i) for i in response.get("Items", [])]
        return found

    async def forget_deleted(self, attachment_id: str) -> bool:
        """Delete a deleted message's attachment row (its object is gone)."""
        return await conditional(
            self._client.delete_item(
                TableName=self.attachments_table,
                Key={"attachment_id": {"S": attachment_id}},
                ConditionExpression="attribute_exists(deleted_at)",
            )
        )


class EditWork(UnitOfWork):
    """`ChatWork`'s items for edits and deletions."""

    _tables: Any  # DynamoChat

    def edit_message(self, message: Message) -> None:
        """The row's new content, mentions, metadata form and `edited_at`, only
        if it exists and is not deleted."""
        update = {
            "TableName": self._tables.messages,
            "Key": _message_key(message.channel_id, message.message_id),
            "UpdateExpression": (
                "SET content = :content, mentions = :mentions, edited_at = :edited, "
                "metadata_compact = :compact"
            ),
            "ConditionExpression": LIVE,
            "ExpressionAttributeValues": to_item(
                {
                    ":content": message.content,
                    ":mentions": list(message.mentions),
                    ":edited": message.edited_at,
                    ":compact": message.metadata_compact,
                }
            ),
        }
        self.add({"Update": update}, "message")

    def delete_message(self, message: Message) -> None:
        """Mark the row deleted (content and lists removed), only once."""
        update = {
            "TableName": self._tables.messages,
            "Key": _message_key(message.channel_id, message.message_id),
            "UpdateExpression": (
                "SET deleted_at = :at, deleted_by = :by, mentions = :none, attachments = :none "
                "REMOVE content"
            ),
            "ConditionExpression": LIVE,
            "ExpressionAttributeValues": to_item(
                {":at": message.deleted_at, ":by": message.deleted_by, ":none": []}
            ),
        }
        self.add({"Update": update}, "message")

    def retire_attachment(self, attachment_id: str, message_id: str, at: int) -> None:
        """A deleted message's attachment: unreadable from now on, queued for the sweep."""
        update = {
            "TableName": self._tables.attachments_table,
            "Key": {"attachment_id": {"S": attachment_id}},
            "UpdateExpression": "SET deleted_at = :at, pending = :p",
            "ConditionExpression": "message_id = :m",
            "ExpressionAttributeValues": to_item(
                {
                    ":at": at,
                    ":p": f"{DELETED_PREFIX}{random.randrange(DELETED_SHARDS)}",
                    ":m": message_id,
                }
            ),
        }
        self.add({"Update": update}, "attachment")
