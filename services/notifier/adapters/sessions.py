"""Leases of open WebSockets per user (`SessionLeases`): in DynamoDB, shared by
every replica, and in memory for a single process.

One item per user: `leases` maps session id → expiry (epoch seconds), with a
`version` for optimistic writes. A new session reads the item, drops the leases
whose expiry has passed (a crashed replica's sessions free up within a lease
time; TTL deletes are days late, so expiry is always checked here), and
writes the item back with its own lease, on condition that the version is the
one it read: two sockets racing for the last place cannot both win. A renewal
sets its lease's expiry (and the item's TTL) on condition that the lease is
still there; a release removes it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from shared.dynamo import TableSpec, conditional, from_item, to_item

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

SESSIONS_TABLE = TableSpec("sessions", hash_key="user_id", ttl_attribute="expires_at")
ATTEMPTS: Final = 40  # a user's sockets that connect at once each get their turn


class LeaseContention(Exception):
    """Too many concurrent writers of one user's leases: try again later."""


def _live(leases: dict[str, Any], now: float) -> dict[str, float]:
    return {sid: float(exp) for sid, exp in leases.items() if float(exp) > now}


class DynamoSessionLeases:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.table = table
        self._clock = clock

    async def acquire(
        self, user_id: str, session_id: str, limit: int, lease_seconds: float
    ) -> bool:
        for attempt in range(ATTEMPTS):
            found = await self._client.get_item(
                TableName=self.table, Key=to_item({"user_id": user_id}), ConsistentRead=True
            )
            item = from_item(found.get("Item", {}))
            now = self._clock()
            leases = _live(item.get("leases", {}), now)
            if session_id not in leases and len(leases) >= limit:
                return False
            leases[session_id] = now + lease_seconds
            version = int(item.get("version", 0))
            condition: dict[str, Any] = (
                {
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": to_item({":v": version}),
                }
                if item
                else {"ConditionExpression": "attribute_not_exists(user_id)"}
            )
            written = await conditional(
                self._client.put_item(
                    TableName=self.table,
                    Item=to_item(
                        {
                            "user_id": user_id,
                            "leases": leases,
                            "version": version + 1,
                            "expires_at": int(max(leases.values())) + 1,
                        }
                    ),
                    **condition,
                )
            )
            if written:
                return True
            await asyncio.sleep(random.uniform(0, 0.005 * min(attempt + 1, 10)))
        raise LeaseContention(f"could not write the leases of {user_id!r}")

    async def renew(self, user_id: str, session_id: str, lease_seconds: float) -> bool:
        expires = self._clock() + lease_seconds
        # Every lease expires by now + lease_seconds, so this is also the item's latest.
        return await conditional(
            self._client.update_item(
                TableName=self.table,
                Key=to_item({"user_id": user_id}),
                UpdateExpression="SET leases.#s = :e, expires_at = :t ADD version :one",
                ConditionExpression="attribute_exists(leases.#s) AND leases.#s > :now",
                ExpressionAttributeNames={"#s": session_id},
                ExpressionAttributeValues=to_item(
                    {":e": expires, ":t": int(expires) + 1, ":one": 1, ":now": self._clock()}
                ),
            )
        )

    async def release(self, user_id: str, session_id: str) -> None:
        await conditional(
            self._client.update_item(
                TableName=self.table,
                Key=to_item({"user_id": user_id}),
                UpdateExpression="REMOVE leases.#s ADD version :one",
                ConditionExpression="attribute_exists(leases.#s)",
                ExpressionAttributeNames={"#s": session_id},
                ExpressionAttributeValues=to_item({":one": 1}),
            )
        )


class MemorySessionLeases:
    """The same rules in one process (the in-process bus: one replica by definition)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._leases: dict[str, dict[str, float]] = {}

    async def acquire(
        self, user_id: str, session_id: str, limit: int, lease_seconds: float
    ) -> bool:
        now = self._clock()
        leases = _live(self._leases.get(user_id, {}), now)
        if session_id not in leases and len(leases) >= limit:
            return False
        leases[session_id] = now + lease_seconds
        self._leases[user_id] = leases
        return True

    async def renew(self, user_id: str, session_id: str, lease_seconds: float) -> bool:
        now = self._clock()
        leases = self._leases.get(user_id, {})
        if leases.get(session_id, 0.0) <= now:
            return False
        leases[session_id] = now + lease_seconds
        return True

    async def release(self, user_id: str, session_id: str) -> None:
        leases = self._leases.get(user_id, {})
        leases.pop(session_id, None)
        if not leases:
            self._leases.pop(user_id, None)
