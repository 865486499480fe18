"""The outbox: an event is written in the same transaction as the state it
announces, then published with confirms; a relay publishes what was left.

Rows live in `<prefix>-<service>-outbox` under a few shard keys, sorted by
creation time, so that the relay finds them with a keyed Query (never a Scan).
After a commit the writer publishes its rows at once and deletes them
("marks them sent"); a row whose publish failed, or whose writer died, is
picked up by `relay_once` after `grace_seconds`. Publishing is at least once:
a relay racing a slow writer may publish a row twice, and consumers' inboxes
absorb it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import metrics
from shared.bus import EventBus, PublishFailed
from shared.dynamo import TableSpec, TransactItem
from shared.events import Envelope, decode
from shared.logging import get_logger, log_context

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = get_logger("belfry.outbox")

OUTBOX_TABLE = TableSpec("outbox", hash_key="shard", range_key="id")


@dataclass(frozen=True)
class OutboxRow:
    shard: str
    id: str
    envelope: Envelope

    def item(self, table: str) -> TransactItem:
        return {
            "Put": {
                "TableName": table,
                "Item": {
                    "shard": {"S": self.shard},
                    "id": {"S": self.id},
                    "envelope": {"S": self.envelope.encode().decode()},
                    "event_type": {"S": self.envelope.type},
                },
            }
        }


class Outbox:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        bus: EventBus,
        *,
        shards: int = 4,
        grace_seconds: float = 5.0,
        batch_size: int = 100,
    ) -> None:
        self._client = client
        self.table = table
        self._bus = bus
        self._shards = shards
        self._grace = grace_seconds
        self._batch = batch_size

    def row(self, envelope: Envelope) -> OutboxRow:
        created_ms = int(envelope.occurred_at.timestamp() * 1000)
        return OutboxRow(
            shard=str(random.randrange(self._shards)),
            id=f"{created_ms:013d}#{envelope.event_id}",
            envelope=envelope,
        )

    async def dispatch(self, rows: Sequence[OutboxRow]) -> int:
        """Publish rows in order and delete each one the broker confirmed.
        Stops at the first failure: the relay takes the rest, still in order."""
        sent = 0
        for row in rows:
            with log_context(event_id=row.envelope.event_id):
                try:
                    await self._bus.publish(row.envelope)
                except PublishFailed as exc:
                    log.warning(
                        "outbox.publish_failed", error=str(exc), event_type=row.envelope.type
                    )
                    return sent
                await self._client.delete_item(
                    TableName=self.table,
                    Key={"shard": {"S": row.shard}, "id": {"S": row.id}},
                )
                sent += 1
        return sent

    async def pending(self, older_than_seconds: float | None = None) -> list[OutboxRow]:
        """Rows older than the grace period, oldest first per shard."""
        age = self._grace if older_than_seconds is None else older_than_seconds
        cutoff = f"{int((time.time() - age) * 1000):013d}~"
        rows: list[OutboxRow] = []
        for shard in range(self._shards):
            response = await self._client.query(
                TableName=self.table,
                KeyConditionExpression="#shard = :shard AND #id < :cutoff",
                ExpressionAttributeNames={"#shard": "shard", "#id": "id"},
                ExpressionAttributeValues={":shard": {"S": str(shard)}, ":cutoff": {"S": cutoff}},
                ConsistentRead=True,
                Limit=self._batch,
            )
            for item in response.get("Items", []):
                rows.append(
                    OutboxRow(item["shard"]["S"], item["id"]["S"], decode(item["envelope"]["S"]))
                )
        return rows

    async def relay_once(self, older_than_seconds: float | None = None) -> int:
        rows = await self.pending(older_than_seconds)
        metrics.OUTBOX_PENDING.labels(self._bus.service).set(len(rows))
        if not rows:
            return 0
        by_shard: dict[str, list[OutboxRow]] = {}
        for row in rows:
            by_shard.setdefault(row.shard, []).append(row)
        sent = 0
        for shard_rows in by_shard.values():
            sent += await self.dispatch(shard_rows)
        log.info("outbox.relayed", pending=len(rows), sent=sent)
        return sent

    async def run_relay(self, interval_seconds: float = 1.0) -> None:
        """Sweep forever (a background task of the service); errors are logged."""
        while True:
            try:
                await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox.relay_failed", error=repr(exc))
            await asyncio.sleep(interval_seconds)

    async def flush(self) -> int:
        """Publish everything pending now, whatever its age (graceful shutdown)."""
        return await self.relay_once(older_than_seconds=0)
