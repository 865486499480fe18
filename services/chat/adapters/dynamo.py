"""`ChatStore` over DynamoDB: the only module of chat that talks to it.

users        user_id -> role, AppInstanceUser ARN
channels     pk="channel", channel_id -> kind, customer, ARN, assigned manager
             (one partition, so a manager's channel list is one keyed Query)
memberships  channel_id, user_id (+ `by_user`): who is in which channel
messages     channel_id, message_id (time-ordered): the message index, full
             mention and attachment lists; history is read from here
attachments  attachment_id -> owner, S3 key, name, size, type, channel once attached;
             `unattached` (sparse) finds uploads never attached, for the sweeper
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.dynamo import (
    Index,
    TableSpec,
    batch_get_table,
    conditional,
    from_item,
    query_all,
    to_item,
)
from shared.pages import query_page
from shared.store import Store

from ..domain import UNASSIGNED, Attachment, Channel, Message, Person, Role
from .dynamo_edits import EditQueries, EditWork, message_from_item
from .reading import SUMMARIES, ReadTables, number_message

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# `by_role` is sparse: only people whose username is known (the directory).
USERS = TableSpec("users", hash_key="user_id", indexes=(Index("by_role", "role", "username"),))
CHANNELS = TableSpec("channels", hash_key="pk", range_key="channel_id")
MEMBERSHIPS = TableSpec(
    "memberships",
    hash_key="channel_id",
    range_key="user_id",
    indexes=(Index("by_user", "user_id", "channel_id"),),
)
MESSAGES = TableSpec("messages", hash_key="channel_id", range_key="message_id")
ATTACHMENTS = TableSpec(
    "attachments",
    hash_key="attachment_id",
    # sparse: only uploads not attached to a message carry `pending`
    indexes=(Index("unattached", "pending", "created_at", range_type="N"),),
)
TABLES = (USERS, CHANNELS, MEMBERSHIPS, MESSAGES, ATTACHMENTS)

CHANNEL_PK = "channel"
PENDING_SHARDS = 4


def _channel(item: Mapping[str, Any]) -> Channel:
    values = from_item(item)
    return Channel(
        channel_id=values["channel_id"],
        kind=values["kind"],
        customer_id=values["customer_id"],
        channel_arn=values["channel_arn"],
        manager_id=values.get("manager_id"),
    )


def _attachment(item: Mapping[str, Any]) -> Attachment:
    v = from_item(item)
    return Attachment(
        attachment_id=v["attachment_id"],
        owner_id=v["owner_id"],
        key=v["key"],
        name=v["name"],
        size=int(v["size"]),
        content_type=v["content_type"],
        channel_id=v.get("channel_id"),
        message_id=v.get("message_id"),
        uploaded=bool(v.get("uploaded", True)),
        deleted="deleted_at" in v,
    )


_message = message_from_item


def _membership_key(channel_id: str, user_id: str) -> dict[str, Any]:
    return {"channel_id": {"S": channel_id}, "user_id": {"S": user_id}}


class DynamoChat(EditQueries):
    def __init__(self, client: DynamoDBClient, store: Store, names: Mapping[str, str]) -> None:
        self._client = client
        self._store = store
        # summaries and read marks (adapters/reading.py), when chat has those tables
        self.reads = ReadTables(client, store, names) if SUMMARIES.suffix in names else None
        self.users = names[USERS.suffix]
        self.channels = names[CHANNELS.suffix]
        self.memberships = names[MEMBERSHIPS.suffix]
        self.messages = names[MESSAGES.suffix]
        self.attachments_table = names[ATTACHMENTS.suffix]

    def work(self) -> ChatWork:
        return ChatWork(self._store, self)

    def _parse_attachment(self, item: Mapping[str, Any]) -> Attachment:
        return _attachment(item)

    # --- people -------------------------------------------------------------

    async def people(self, user_ids: Sequence[str]) -> dict[str, Person]:
        keys = [{"user_id": {"S": u}} for u in dict.fromkeys(user_ids)]
        found = {}
        for item in await batch_get_table(self._client, self.users, keys):
            v = from_item(item)
            found[v["user_id"]] = Person(v["user_id"], v["role"], v.get("arn"), v.get("username"))
        return found

    async def person(self, user_id: str) -> Person | None:
        return (await self.people([user_id])).get(user_id)

    async def save_person(self, person: Person) -> None:
        values: dict[str, Any] = {":role": {"S": person.role}}
        expression = "SET #r = :role"
        if person.arn:
            expression += ", arn = :arn"
            values[":arn"] = {"S": person.arn}
        if person.username:
            expression += ", username = :username"
            values[":username"] = {"S": person.username}
        await self._client.update_item(
            TableName=self.users,
            Key={"user_id": {"S": person.user_id}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#r": "role"},
            ExpressionAttributeValues=values,
        )

    async def people_with_role(self, role: Role, limit: int) -> list[Person]:
        response = await self._client.query(
            TableName=self.users,
            IndexName="by_role",
            KeyConditionExpression="#r = :role",
            ExpressionAttributeNames={"#r": "role"},
            ExpressionAttributeValues={":role": {"S": role}},
            Limit=limit,
        )
        rows = (from_item(i) for i in response.get("Items", []))
        return [Person(v["user_id"], v["role"], v.get("arn"), v.get("username")) for v in rows]

    async def people_page(
        self, role: Role, cursor: str | None, limit: int
    ) -> tuple[list[Person], str | None]:
        items, next_cursor = await query_page(
            self._client,
            cursor,
            names=("user_id", "role", "username"),
            fixed={"role": role},
            TableName=self.users,
            IndexName="by_role",
            KeyConditionExpression="#r = :role",
            ExpressionAttributeNames={"#r": "role"},
            ExpressionAttributeValues={":role": {"S": role}},
            Limit=limit,
        )
        rows = (from_item(i) for i in items)
        found = [Person(v["user_id"], v["role"], v.get("arn"), v.get("username")) for v in rows]
        return found, next_cursor

    # --- channels and memberships -------------------------------------------------

    async def channel(self, channel_id: str) -> Channel | None:
        response = await self._client.get_item(
            TableName=self.channels,
            Key={"pk": {"S": CHANNEL_PK}, "channel_id": {"S": channel_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _channel(item) if item else None

    async def channel_page(
        self, cursor: str | None, limit: int
    ) -> tuple[list[Channel], str | None]:
        items, next_cursor = await query_page(
            self._client,
            cursor,
            names=("pk", "channel_id"),
            fixed={"pk": CHANNEL_PK},
            TableName=self.channels,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": CHANNEL_PK}},
            Limit=limit,
        )
        return [_channel(i) for i in items], next_cursor

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        response = await self._client.get_item(
            TableName=self.memberships,
            Key=_membership_key(channel_id, user_id),
            ConsistentRead=True,
        )
        return "Item" in response

    async def channels_of(self, user_id: str) -> set[str]:
        items = await query_all(
            self._client,
            TableName=self.memberships,
            IndexName="by_user",
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
        )
        return {i["channel_id"]["S"] for i in items}

    # --- messages -------------------------------------------------------------

    async def message_page(
        self, channel_id: str, cursor: str | None, limit: int
    ) -> tuple[list[Message], str | None]:
        items, next_cursor = await query_page(
            self._client,
            cursor,
            names=("channel_id", "message_id"),
            fixed={"channel_id": channel_id},
            TableName=self.messages,
            KeyConditionExpression="channel_id = :c",
            ExpressionAttributeValues={":c": {"S": channel_id}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_message(i) for i in items], next_cursor

    # --- attachments -------------------------------------------------------------

    async def attachments(self, attachment_ids: Sequence[str]) -> dict[str, Attachment]:
        keys = [{"attachment_id": {"S": a}} for a in dict.fromkeys(attachment_ids)]
        items = await batch_get_table(self._client, self.attachments_table, keys)
        return {a.attachment_id: a for a in map(_attachment, items)}

    async def save_attachment(self, attachment: Attachment, created_at: int) -> None:
        await self._client.put_item(
            TableName=self.attachments_table,
            Item=to_item(
                {
                    "attachment_id": attachment.attachment_id,
                    "owner_id": attachment.owner_id,
                    "key": attachment.key,
                    "name": attachment.name,
                    "size": attachment.size,
                    "content_type": attachment.content_type,
                    "uploaded": attachment.uploaded,
                    "created_at": created_at,
                    "pending": f"unattached-{random.randrange(PENDING_SHARDS)}",
                }
            ),
            ConditionExpression="attribute_not_exists(attachment_id)",
        )

    async def unattached_before(self, before: int, limit: int = 100) -> list[Attachment]:
        found: list[Attachment] = []
        for shard in range(PENDING_SHARDS):
            response = await self._client.query(
                TableName=self.attachments_table,
                IndexName="unattached",
                KeyConditionExpression="pending = :p AND created_at < :before",
                ExpressionAttributeValues={
                    ":p": {"S": f"unattached-{shard}"},
                    ":before": {"N": str(before)},
                },
                Limit=limit,
            )
            found += [_attachment(i) for i in response.get("Items", [])]
        return found

    async def forget_unattached(self, attachment_id: str) -> bool:
        return await conditional(
            self._client.delete_item(
                TableName=self.attachments_table,
                Key={"attachment_id": {"S": attachment_id}},
                ConditionExpression=(
                    "attribute_exists(pending) AND attribute_not_exists(channel_id)"
                ),
            )
        )


class ChatWork(EditWork):
    """chat's unit of work: its writes as transaction items, under their roles."""

    def __init__(self, store: Store, tables: DynamoChat) -> None:
        super().__init__(store)
        self._tables = tables

    def save_channel(self, channel: Channel, *, expected_manager: str | None) -> None:
        item = to_item(
            {
                "pk": CHANNEL_PK,
                "channel_id": channel.channel_id,
                "kind": channel.kind,
                "customer_id": channel.customer_id,
                "channel_arn": channel.channel_arn,
                "manager_id": channel.manager_id,
            }
        )
        put: dict[str, Any] = {"TableName": self._tables.channels, "Item": item}
        if expected_manager is None:
            put["ConditionExpression"] = "attribute_not_exists(channel_id)"
        elif expected_manager == UNASSIGNED:
            put["ConditionExpression"] = (
                "attribute_exists(channel_id) AND attribute_not_exists(manager_id)"
            )
        else:
            put["ConditionExpression"] = "manager_id = :expected"
            put["ExpressionAttributeValues"] = {":expected": {"S": expected_manager}}
        self.add({"Put": put}, "channel")
        if self._tables.reads is not None:  # every channel is listed, messages or not
            self.add(self._tables.reads.seed_item(channel), "summary")

    def add_member(self, channel_id: str, user_id: str, reason: str, at: int) -> None:
        values = {"channel_id": channel_id, "user_id": user_id, "reason": reason, "at": at}
        self.add(
            {"Put": {"TableName": self._tables.memberships, "Item": to_item(values)}},
            "membership",
        )

    def remove_member(self, channel_id: str, user_id: str) -> None:
        key = _membership_key(channel_id, user_id)
        self.add({"Delete": {"TableName": self._tables.memberships, "Key": key}}, "membership")

    def save_message(self, message: Message) -> None:
        values = {
            "channel_id": message.channel_id,
            "message_id": message.message_id,
            "chime_message_id": message.chime_message_id,
            "sender_id": message.sender_id,
            "content": message.content,
            "mentions": list(message.mentions),
            "attachments": list(message.attachments),
            "posted_at": message.posted_at,
            "metadata_compact": message.metadata_compact,
        }
        put = {
            "TableName": self._tables.messages,
            "Item": to_item(values),
            "ConditionExpression": "attribute_not_exists(message_id)",
        }
        self.add({"Put": put}, "message")

    def touch_channel(self, message: Message, seq: int) -> None:
        if self._tables.reads is not None:
            number_message(self._items, self._tables.messages, message.message_id, seq)
            for item in self._tables.reads.touch_items(message, seq):
                self.add(item, "summary")

    def attach(self, attachment: Attachment, channel_id: str, message_id: str) -> None:
        update = {
            "TableName": self._tables.attachments_table,
            "Key": {"attachment_id": {"S": attachment.attachment_id}},
            "UpdateExpression": (
                "SET channel_id = :c, message_id = :m, uploaded = :t REMOVE pending"
            ),
            "ConditionExpression": "owner_id = :o AND attribute_not_exists(channel_id)",
            "ExpressionAttributeValues": {
                ":c": {"S": channel_id},
                ":m": {"S": message_id},
                ":o": {"S": attachment.owner_id},
                ":t": {"BOOL": True},
            },
        }
        self.add({"Update": update}, "attachment")
