"""The inbox: "this consumer has handled this event", so redeliveries run once.

Two ways to use it:

- Handlers whose side effects are DynamoDB writes put `Inbox.record(...)` into
  the same TransactWriteItems (see `shared.store.Store.commit(once=...)`): one
  call, and a duplicate cancels the whole transaction.
- Handlers with side effects elsewhere (a Chime call) `claim` first (a lease,
  so a consumer that dies mid-way does not block the event for ever), do the
  work, then commit `completion(...)` with their state, or `release` on failure.

Rows expire after `retention_seconds` (TTL attribute `expires_at`); DynamoDB
deletes expired items late, so every condition also treats them as absent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.dynamo import TableSpec, TransactItem, conditional, from_item

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

INBOX_TABLE = TableSpec("inbox", hash_key="pk", ttl_attribute="expires_at")
DONE, PROCESSING = "done", "processing"


class AlreadyInProgress(Exception):
    """Another delivery of this event holds a live claim; try again later."""


class Inbox:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        retention_seconds: int = 7 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.table = table
        self._retention = retention_seconds
        self._clock = clock

    @staticmethod
    def key(consumer: str, event_id: str) -> str:
        return f"{consumer}#{event_id}"

    def _now(self) -> int:
        return int(self._clock())

    def record(self, consumer: str, event_id: str) -> TransactItem:
        """A transaction item that fails if this event was already handled."""
        now = self._now()
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "pk": {"S": self.key(consumer, event_id)},
                    "status": {"S": DONE},
                    "handled_at": {"N": str(now)},
                    "expires_at": {"N": str(now + self._retention)},
                },
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": {":now": {"N": str(now)}},
            }
        }

    async def seen(self, consumer: str, event_id: str) -> bool:
        response = await self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": self.key(consumer, event_id)}},
            ConsistentRead=True,
        )
        item = from_item(response.get("Item", {}))
        return item.get("status") == DONE and int(item.get("expires_at", 0)) >= self._now()

    async def claim(self, consumer: str, event_id: str, lease_seconds: int = 60) -> bool:
        """True: the work is yours. False: already done. `AlreadyInProgress`: a
        live claim by another delivery."""
        now = self._now()
        claimed = await conditional(
            self._client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": self.key(consumer, event_id)},
                    "status": {"S": PROCESSING},
                    "lease_until": {"N": str(now + lease_seconds)},
                    "expires_at": {"N": str(now + self._retention)},
                },
                ConditionExpression=(
                    "attribute_not_exists(pk) OR expires_at < :now"
                    " OR (#s = :processing AND lease_until < :now)"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":now": {"N": str(now)},
                    ":processing": {"S": PROCESSING},
                },
            )
        )
        if claimed:
            return True
        if await self.seen(consumer, event_id):
            return False
        raise AlreadyInProgress(self.key(consumer, event_id))

    def completion(self, consumer: str, event_id: str) -> TransactItem:
        """A transaction item that turns this delivery's claim into `done`."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": self.key(consumer, event_id)}},
                "UpdateExpression": "SET #s = :done, handled_at = :now REMOVE lease_until",
                "ConditionExpression": "#s = :processing",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {
                    ":done": {"S": DONE},
                    ":processing": {"S": PROCESSING},
                    ":now": {"N": str(self._now())},
                },
            }
        }

    async def release(self, consumer: str, event_id: str) -> None:
        """Give a claim back after a failure, so a retry can take it at once."""
        await conditional(
            self._client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": self.key(consumer, event_id)}},
                ConditionExpression="#s = :processing",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":processing": {"S": PROCESSING}},
            )
        )
