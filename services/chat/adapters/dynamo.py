"""chat's tables and the reads and transaction items over them.

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

import base64
import binascii
import json
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.dynamo import Index, TableSpec, TransactItem, from_item, to_item
from shared.errors import BadRequest

from ..domain import Attachment, Channel, Person

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

USERS = TableSpec("users", hash_key="user_id")
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


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str | None, expected: Iterable[str]) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeError):
        raise BadRequest("the cursor is not valid", code="invalid_cursor") from None
    wanted = set(expected)
    if (
        not isinstance(key, dict)
        or set(key) != wanted
        or not all(
            isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str)
            for v in key.values()
        )
    ):
        raise BadRequest("the cursor is not valid", code="invalid_cursor")
    return key


def _channel(item: dict[str, Any]) -> Channel:
    values = from_item(item)
    return Channel(
        channel_id=values["channel_id"],
        kind=values["kind"],
        customer_id=values["customer_id"],
        channel_arn=values["channel_arn"],
        manager_id=values.get("manager_id"),
    )


def _attachment(item: dict[str, Any]) -> Attachment:
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
    )


class ChatTables:
    def __init__(self, client: DynamoDBClient, names: dict[str, str]) -> None:
        self.client = client
        self.users = names[USERS.suffix]
        self.channels = names[CHANNELS.suffix]
        self.memberships = names[MEMBERSHIPS.suffix]
        self.messages = names[MESSAGES.suffix]
        self.attachments = names[ATTACHMENTS.suffix]

    # --- people -------------------------------------------------------------

    async def people(self, user_ids: Sequence[str]) -> dict[str, Person]:
        found: dict[str, Person] = {}
        wanted = list(dict.fromkeys(user_ids))
        for start in range(0, len(wanted), 100):
            keys: list[Any] = [{"user_id": {"S": u}} for u in wanted[start : start + 100]]
            request: dict[str, Any] = {self.users: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = await self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.users, []):
                    v = from_item(item)
                    found[v["user_id"]] = Person(v["user_id"], v["role"], v.get("arn"))
                request = dict(response.get("UnprocessedKeys") or {})
        return found

    async def person(self, user_id: str) -> Person | None:
        return (await self.people([user_id])).get(user_id)

    async def save_person(self, person: Person) -> None:
        """Record the role (and ARN once known); never forget a known ARN."""
        names = {"#r": "role"}
        values: dict[str, Any] = {":role": {"S": person.role}}
        expression = "SET #r = :role"
        if person.arn:
            expression += ", arn = :arn"
            values[":arn"] = {"S": person.arn}
        await self.client.update_item(
            TableName=self.users,
            Key={"user_id": {"S": person.user_id}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    # --- channels -------------------------------------------------------------

    async def channel(self, channel_id: str) -> Channel | None:
        response = await self.client.get_item(
            TableName=self.channels,
            Key={"pk": {"S": CHANNEL_PK}, "channel_id": {"S": channel_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _channel(item) if item else None

    async def list_channels(
        self, cursor: str | None, limit: int
    ) -> tuple[list[Channel], str | None]:
        extra: dict[str, Any] = {}
        start = decode_cursor(cursor, ("pk", "channel_id"))
        if start:
            if start["pk"]["S"] != CHANNEL_PK:
                raise BadRequest("the cursor is not valid", code="invalid_cursor")
            extra["ExclusiveStartKey"] = start
        response = await self.client.query(
            TableName=self.channels,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": CHANNEL_PK}},
            Limit=limit,
            **extra,
        )
        channels = [_channel(i) for i in response.get("Items", [])]
        return channels, encode_cursor(response.get("LastEvaluatedKey"))

    def put_channel(self, channel: Channel, *, expected_manager: str | None) -> TransactItem:
        """Create the channel row, or move its manager, only if nobody moved it since we read."""
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
        put: dict[str, Any] = {"TableName": self.channels, "Item": item}
        if expected_manager is None:
            put["ConditionExpression"] = "attribute_not_exists(channel_id)"
        else:
            put["ConditionExpression"] = "manager_id = :expected"
            put["ExpressionAttributeValues"] = {":expected": {"S": expected_manager}}
        return {"Put": put}

    # --- memberships ------------------------------------------------------------

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        response = await self.client.get_item(
            TableName=self.memberships,
            Key={"channel_id": {"S": channel_id}, "user_id": {"S": user_id}},
            ConsistentRead=True,
        )
        return "Item" in response

    async def members(self, channel_id: str) -> set[str]:
        found: set[str] = set()
        extra: dict[str, Any] = {}
        while True:
            response = await self.client.query(
                TableName=self.memberships,
                KeyConditionExpression="channel_id = :c",
                ExpressionAttributeValues={":c": {"S": channel_id}},
                ConsistentRead=True,
                **extra,
            )
            found.update(i["user_id"]["S"] for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found
            extra["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def channels_of(self, user_id: str) -> set[str]:
        found: set[str] = set()
        extra: dict[str, Any] = {}
        while True:
            response = await self.client.query(
                TableName=self.memberships,
                IndexName="by_user",
                KeyConditionExpression="user_id = :u",
                ExpressionAttributeValues={":u": {"S": user_id}},
                **extra,
            )
            found.update(i["channel_id"]["S"] for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found
            extra["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def put_membership(self, channel_id: str, user_id: str, reason: str, at: int) -> TransactItem:
        return {
            "Put": {
                "TableName": self.memberships,
                "Item": to_item(
                    {"channel_id": channel_id, "user_id": user_id, "reason": reason, "at": at}
                ),
            }
        }

    def delete_membership(self, channel_id: str, user_id: str) -> TransactItem:
        return {
            "Delete": {
                "TableName": self.memberships,
                "Key": {"channel_id": {"S": channel_id}, "user_id": {"S": user_id}},
            }
        }

    # --- messages -------------------------------------------------------------

    def put_message(self, message: dict[str, Any]) -> TransactItem:
        return {
            "Put": {
                "TableName": self.messages,
                "Item": to_item(message),
                "ConditionExpression": "attribute_not_exists(message_id)",
            }
        }

    async def list_messages(
        self, channel_id: str, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        extra: dict[str, Any] = {}
        start = decode_cursor(cursor, ("channel_id", "message_id"))
        if start:
            if start["channel_id"]["S"] != channel_id:
                raise BadRequest("the cursor belongs to another channel", code="invalid_cursor")
            extra["ExclusiveStartKey"] = start
        response = await self.client.query(
            TableName=self.messages,
            KeyConditionExpression="channel_id = :c",
            ExpressionAttributeValues={":c": {"S": channel_id}},
            ScanIndexForward=False,
            Limit=limit,
            **extra,
        )
        rows = [from_item(i) for i in response.get("Items", [])]
        return rows, encode_cursor(response.get("LastEvaluatedKey"))

    # --- attachments -------------------------------------------------------------

    async def attachments_by_id(self, ids: Sequence[str]) -> dict[str, Attachment]:
        found: dict[str, Attachment] = {}
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), 100):
            keys: list[Any] = [{"attachment_id": {"S": a}} for a in wanted[start : start + 100]]
            request: dict[str, Any] = {self.attachments: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = await self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.attachments, []):
                    attachment = _attachment(item)
                    found[attachment.attachment_id] = attachment
                request = dict(response.get("UnprocessedKeys") or {})
        return found

    async def attachment(self, attachment_id: str) -> Attachment | None:
        return (await self.attachments_by_id([attachment_id])).get(attachment_id)

    async def put_attachment(self, attachment: Attachment, created_at: int) -> None:
        await self.client.put_item(
            TableName=self.attachments,
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
        """Uploads created before `before` and never attached (a keyed Query per shard)."""
        found: list[Attachment] = []
        for shard in range(PENDING_SHARDS):
            response = await self.client.query(
                TableName=self.attachments,
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
        """Delete the row unless a message took the attachment meanwhile."""
        try:
            await self.client.delete_item(
                TableName=self.attachments,
                Key={"attachment_id": {"S": attachment_id}},
                ConditionExpression=(
                    "attribute_exists(pending) AND attribute_not_exists(channel_id)"
                ),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def attach(self, attachment: Attachment, channel_id: str, message_id: str) -> TransactItem:
        """Tie an upload to its message, once, and only its owner's."""
        return {
            "Update": {
                "TableName": self.attachments,
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
        }
