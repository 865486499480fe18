"""The mention inbox in DynamoDB (`MentionInbox`): one item per (person,
mention), newest first by `sort`; `unread` is a sparse index of the unread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.dynamo import (
    ConditionFailed,
    Index,
    TableSpec,
    TransactItem,
    conditional,
    count_all,
    from_item,
    to_item,
)
from shared.events import Envelope, UserMentioned
from shared.inbox import Inbox
from shared.pages import query_page
from shared.store import Store

from ..ports import EventKey, Recorded
from .members import DynamoMembers

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

MENTIONS_TABLE = TableSpec(
    "mentions",
    hash_key="user_id",
    range_key="mention_id",
    indexes=(
        Index("by_time", "user_id", "sort"),
        Index("unread", "user_id", "unread_sort"),  # sparse: only unread mentions
    ),
)
# A page's LastEvaluatedKey: the table's key and the index's.
_PAGE_KEYS = {
    "by_time": ("user_id", "mention_id", "sort"),
    "unread": ("user_id", "mention_id", "unread_sort"),
}


class DynamoMentions:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        store: Store,
        inbox: Inbox,
        members: DynamoMembers,
    ) -> None:
        self._client = client
        self.table = table
        self._store = store
        self._inbox = inbox
        self._members = members

    async def record(
        self, mention: UserMentioned, at: str, *, joined: Envelope | None, claim: EventKey
    ) -> Recorded:
        """The inbox entry, the lazy join's membership and its ChannelJoined (when
        `joined` is given) and the claim's completion in one transaction. What
        a peer recorded first (a race) stays theirs: it is left out and tried
        again, and only a membership written here is announced."""
        parts: dict[str, TransactItem] = {"mention": self._mention_item(mention, at)}
        if joined is not None:
            parts["join"] = self._members.join_item(
                mention.channel_id, mention.mentioned_user_id, "mention"
            )
        completion = self._inbox.completion(*claim)
        while True:
            names = list(parts)
            events = [joined] if joined is not None and "join" in parts else []
            try:
                await self._store.commit([*parts.values(), completion], events=events)
            except ConditionFailed as exc:
                failed = [names[i] for i in exc.indexes if i < len(names)]
                if len(names) in exc.indexes or not failed:
                    raise  # the claim is no longer ours
                for name in failed:
                    del parts[name]
                continue
            return Recorded(mention="mention" in parts, joined="join" in parts)

    def _mention_item(self, mention: UserMentioned, at: str) -> TransactItem:
        sort = f"{at}#{mention.mention_id}"
        values = {
            "user_id": mention.mentioned_user_id,
            "mention_id": mention.mention_id,
            "message_id": mention.message_id,
            "channel_id": mention.channel_id,
            "channel_arn": mention.channel_arn,
            "mentioned_by": mention.mentioned_by,
            "excerpt": mention.excerpt,
            "created_at": at,
            "sort": sort,
            "unread_sort": sort,
        }
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(mention_id)",
            }
        }

    async def page(
        self, user_id: str, *, unread_only: bool, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        index = "unread" if unread_only else "by_time"
        items, next_cursor = await query_page(
            self._client,
            cursor,
            names=_PAGE_KEYS[index],
            fixed={"user_id": user_id},
            TableName=self.table,
            IndexName=index,
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_mention_out(from_item(item)) for item in items], next_cursor

    async def unread_count(self, user_id: str) -> int:
        return await count_all(
            self._client,
            TableName=self.table,
            IndexName="unread",
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
        )

    async def mark_read(self, user_id: str, mention_id: str, at: str) -> bool:
        """False if this user has no such mention (someone else's is not theirs)."""
        return await conditional(
            self._client.update_item(
                TableName=self.table,
                Key={"user_id": {"S": user_id}, "mention_id": {"S": mention_id}},
                UpdateExpression="SET read_at = if_not_exists(read_at, :at) REMOVE unread_sort",
                ConditionExpression="attribute_exists(mention_id)",
                ExpressionAttributeValues={":at": {"S": at}},
            )
        )


def _mention_out(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "mention_id": item["mention_id"],
        "message_id": item.get("message_id"),
        "channel_id": item.get("channel_id"),
        "channel_arn": item.get("channel_arn"),
        "mentioned_by": item.get("mentioned_by"),
        "excerpt": item.get("excerpt", ""),
        "created_at": item.get("created_at"),
        "read": "read_at" in item,
        "read_at": item.get("read_at"),
    }
