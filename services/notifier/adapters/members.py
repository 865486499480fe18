"""The notifier's view of channel membership in DynamoDB (`Members`)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.dynamo import TableSpec, TransactItem, conditional, query_all, to_item

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

MEMBERS_TABLE = TableSpec("members", hash_key="channel_id", range_key="user_id")


class DynamoMembers:
    """The notifier's view of who is in which channel (from ChannelJoined).

    Every message needs its channel's members, so a replica keeps each
    channel's set for `cache_seconds` (one Query per channel and period, not
    one per message) and adds the joins it records itself at once, also to a
    set read from the table before their write landed (events of one queue
    are handled concurrently, so a message may be read in while the join
    before it is still being written); a join recorded by a peer replica shows
    here within `cache_seconds`.
    """

    RECENT_SECONDS = 30.0  # far longer than one write takes to land

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        cache_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.table = table
        self._ttl = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[set[str]]] = {}
        self._recent: dict[str, dict[str, float]] = {}  # joins recorded here, when
        self._recent_order: deque[tuple[float, str, str]] = deque()

    async def members(self, channel_id: str) -> set[str]:
        cached = self._cache.get(channel_id)
        if cached is not None and cached[0] > self._clock():
            return set(cached[1])
        loading = self._loading.get(channel_id)
        if loading is None:  # one query per channel at a time, shared
            loading = asyncio.ensure_future(self._load(channel_id))
            self._loading[channel_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(channel_id, None))
        return set(await asyncio.shield(loading))

    async def _load(self, channel_id: str) -> set[str]:
        expires = self._clock() + self._ttl
        found = await self._query(channel_id)
        found |= self._recent.get(channel_id, {}).keys()
        self._cache[channel_id] = (expires, found)
        self._cache.move_to_end(channel_id)
        while len(self._cache) > 10_000:
            self._cache.popitem(last=False)
        return found

    def _joined(self, channel_id: str, user_id: str) -> None:
        now = self._clock()
        while self._recent_order and self._recent_order[0][0] < now - self.RECENT_SECONDS:
            at, channel, user = self._recent_order.popleft()
            users = self._recent.get(channel, {})
            if users.get(user) == at:
                del users[user]
                if not users:
                    del self._recent[channel]
        self._recent.setdefault(channel_id, {})[user_id] = now
        self._recent_order.append((now, channel_id, user_id))
        cached = self._cache.get(channel_id)
        if cached is not None:
            cached[1].add(user_id)

    async def _query(self, channel_id: str) -> set[str]:
        items = await query_all(
            self._client,
            TableName=self.table,
            KeyConditionExpression="channel_id = :c",
            ExpressionAttributeValues={":c": {"S": channel_id}},
            ProjectionExpression="user_id",
            ConsistentRead=True,
        )
        return {item["user_id"]["S"] for item in items}

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        response = await self._client.get_item(
            TableName=self.table,
            Key={"channel_id": {"S": channel_id}, "user_id": {"S": user_id}},
            ConsistentRead=True,
        )
        return "Item" in response

    def _values(self, channel_id: str, user_id: str, reason: str) -> dict[str, Any]:
        return {
            "channel_id": channel_id,
            "user_id": user_id,
            "reason": reason,
            "joined_at": int(time.time()),
        }

    async def add(self, channel_id: str, user_id: str, reason: str) -> None:
        """Record a membership announced by a ChannelJoined (idempotent)."""
        self._joined(channel_id, user_id)
        await conditional(
            self._client.put_item(
                TableName=self.table,
                Item=to_item(self._values(channel_id, user_id, reason)),
                ConditionExpression="attribute_not_exists(user_id)",
            )
        )

    async def remove(self, channel_id: str, user_id: str) -> None:
        """Forget a membership announced ended by a ChannelLeft (idempotent):
        at once in this replica's cache; a peer's on its fan-out queue (`forget`)."""
        self.forget(channel_id, user_id)
        await self._client.delete_item(
            TableName=self.table,
            Key={"channel_id": {"S": channel_id}, "user_id": {"S": user_id}},
        )

    def learned(self, channel_id: str, user_id: str) -> None:
        """A ChannelJoined on this replica's fan-out queue: into the cached list
        at once, and into a list read from the table for `RECENT_SECONDS` (the
        fan-out may come before the join's row is written), so that a
        long-lived cache does not hide a peer's join. A ChannelLeft's `forget`
        undoes it."""
        self._joined(channel_id, user_id)

    def forget(self, channel_id: str, user_id: str) -> None:
        """Drop a person who left from what this replica holds (its recent joins,
        which would otherwise be added back to a fresh read for 30 s, and its
        cached list), whichever replica deletes the row."""
        self._recent.get(channel_id, {}).pop(user_id, None)
        cached = self._cache.get(channel_id)
        if cached is not None:
            cached[1].discard(user_id)

    def join_item(self, channel_id: str, user_id: str, reason: str) -> TransactItem:
        """A transaction item that records a new membership, failing if it exists."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(self._values(channel_id, user_id, reason)),
                "ConditionExpression": "attribute_not_exists(user_id)",
            }
        }
