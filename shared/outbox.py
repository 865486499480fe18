"""The outbox: an event is written in the same transaction as the state it
announces, then published with confirms; a relay publishes what was left.

Rows live in `<prefix>-<service>-outbox` under a few shard keys, sorted by
creation time, so that the relay finds them with a keyed Query (never a Scan).
After a commit the writer publishes its rows at once and deletes them
("marks them sent"; the deletes of commits close together share one
BatchWriteItem); a row whose publish failed, or whose writer died, is
picked up by `relay_once` after `grace_seconds`. Publishing is at least once:
a relay racing a slow writer may publish a row twice, and consumers' inboxes
absorb it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import metrics, tracing
from shared.bus import EventBus, PublishFailed
from shared.dynamo import TableSpec, TransactItem
from shared.events import Envelope, decode
from shared.logging import get_logger, log_context
from shared.runtime import every

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = get_logger("belfry.outbox")

OUTBOX_TABLE = TableSpec("outbox", hash_key="shard", range_key="id")
BATCH_WRITE_MAX = 25  # DynamoDB's BatchWriteItem limit


def subject(envelope: Envelope) -> str:
    """What an event is about, its room or channel: the outbox keeps each
    subject's events in order and publishes different subjects concurrently."""
    for field in ("room_id", "channel_id"):
        value = getattr(envelope.data, field, None)
        if value:
            return f"{field}={value}"
    return ""


@dataclass(frozen=True)
class OutboxRow:
    """The events of one commit: one item, however many (a claim of 40 rooms
    writes 41 items, not 80). `trace`: the W3C trace context (`traceparent`,
    `tracestate`) of the request or handler that committed it, so that its
    publish, by the writer or later by the relay, continues that trace; empty
    when tracing is off."""

    shard: str
    id: str
    envelopes: tuple[Envelope, ...]
    trace: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def item(self, table: str) -> TransactItem:
        encoded = ",".join(e.encode().decode() for e in self.envelopes)
        return {
            "Put": {
                "TableName": table,
                "Item": {
                    "shard": {"S": self.shard},
                    "id": {"S": self.id},
                    "envelopes": {"S": f"[{encoded}]"},
                    "event_types": {"S": ",".join(e.type for e in self.envelopes)},
                    **{name: {"S": value} for name, value in self.trace.items()},
                },
            }
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> OutboxRow:
        if "envelopes" in item:
            envelopes = tuple(decode(json.dumps(e)) for e in json.loads(item["envelopes"]["S"]))
        else:  # a row of one event, as an older writer left it
            envelopes = (decode(item["envelope"]["S"]),)
        trace = {h: item[h]["S"] for h in tracing.TRACE_HEADERS if h in item}
        return cls(item["shard"]["S"], item["id"]["S"], envelopes, trace)


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
        order_key: Callable[[Envelope], str] = subject,
    ) -> None:
        self._client = client
        self.table = table
        self._bus = bus
        self._shards = shards
        self._grace = grace_seconds
        self._batch = batch_size
        self._order_key = order_key
        # Published rows whose delete is pending: deletes are gathered for a
        # moment and sent 25 a BatchWriteItem, not one call per commit.
        self._sent: dict[str, OutboxRow] = {}
        self._deleter: asyncio.Task[None] | None = None
        self.delete_delay_seconds = 0.05

    def row(self, *envelopes: Envelope) -> OutboxRow:
        """The row of one commit's events (in their order)."""
        first = envelopes[0]
        created_ms = int(first.occurred_at.timestamp() * 1000)
        return OutboxRow(
            shard=str(random.randrange(self._shards)),
            id=f"{created_ms:013d}#{first.event_id}",
            envelopes=envelopes,
            trace=tracing.carrier(),  # the committing request's or handler's span
        )

    async def dispatch(self, rows: Sequence[OutboxRow]) -> int:
        """Publish the rows' events, then delete the rows whose every event the
        broker confirmed (25 a call); the number of events published.

        Each subject's events (`order_key`: its room or channel) go in order and
        stop at that subject's first failure, so the relay takes the rest still
        in order; different subjects go concurrently, so a burst of 40
        transitions waits for about one confirm, not 40. A row left (one of its
        events failed, or its delete was lost) is published again by the relay:
        at least once, and consumers' inboxes absorb the repeats."""
        by_subject: dict[str, list[tuple[Envelope, Mapping[str, str]]]] = {}
        for row in rows:
            for envelope in row.envelopes:
                by_subject.setdefault(self._order_key(envelope), []).append((envelope, row.trace))
        results = await asyncio.gather(*(self._publish_in_order(g) for g in by_subject.values()))
        published = {event_id for group in results for event_id in group}
        self._forget_soon(
            [row for row in rows if all(e.event_id in published for e in row.envelopes)]
        )
        return len(published)

    def _forget_soon(self, rows: Sequence[OutboxRow]) -> None:
        for row in rows:
            self._sent[row.id] = row
        if rows and (self._deleter is None or self._deleter.done()):
            self._deleter = asyncio.get_running_loop().create_task(self._delete_sent())

    async def _delete_sent(self) -> None:
        await asyncio.sleep(self.delete_delay_seconds)
        while self._sent:
            rows = list(self._sent.values())[:BATCH_WRITE_MAX]
            try:
                await self._forget(rows)
            finally:  # a row left undeleted is published again by the relay
                for row in rows:
                    self._sent.pop(row.id, None)

    async def _deleted(self) -> None:
        """Wait until every published row's delete has been sent."""
        while self._deleter is not None and not self._deleter.done():
            await asyncio.shield(self._deleter)

    async def _publish_in_order(
        self, envelopes: Sequence[tuple[Envelope, Mapping[str, str]]]
    ) -> list[str]:
        published: list[str] = []
        for envelope, trace in envelopes:
            with tracing.resumed(trace), log_context(event_id=envelope.event_id):
                try:
                    await self._bus.publish(envelope)
                except PublishFailed as exc:
                    log.warning("outbox.publish_failed", error=str(exc), event_type=envelope.type)
                    break
            published.append(envelope.event_id)
        return published

    async def _forget(self, rows: Sequence[OutboxRow]) -> None:
        for start in range(0, len(rows), BATCH_WRITE_MAX):
            requests: list[Any] = [
                {"DeleteRequest": {"Key": {"shard": {"S": r.shard}, "id": {"S": r.id}}}}
                for r in rows[start : start + BATCH_WRITE_MAX]
            ]
            try:
                for attempt in range(5):
                    response = await self._client.batch_write_item(
                        RequestItems={self.table: requests}
                    )
                    requests = list(response.get("UnprocessedItems", {}).get(self.table, []))
                    if not requests:
                        break
                    await asyncio.sleep(0.05 * 2**attempt)
            except Exception as exc:  # the rows stay; the relay publishes them again
                log.warning("outbox.cleanup_failed", error=repr(exc), rows=len(requests))

    async def pending(self, older_than_seconds: float | None = None) -> list[OutboxRow]:
        """Rows older than the grace period, oldest first per shard."""
        age = self._grace if older_than_seconds is None else older_than_seconds
        cutoff = f"{int((time.time() - age) * 1000):013d}~"
        rows: list[OutboxRow] = []
        for shard in range(self._shards):
            sent = set(self._sent)  # a row deleted while the query runs is still answered
            response = await self._client.query(
                TableName=self.table,
                KeyConditionExpression="#shard = :shard AND #id < :cutoff",
                ExpressionAttributeNames={"#shard": "shard", "#id": "id"},
                ExpressionAttributeValues={":shard": {"S": str(shard)}, ":cutoff": {"S": cutoff}},
                ConsistentRead=True,
                Limit=self._batch,
            )
            for item in response.get("Items", []):
                if item["id"]["S"] in sent or item["id"]["S"] in self._sent:
                    continue  # published here, its delete on its way
                rows.append(OutboxRow.from_item(item))
        return rows

    async def relay_once(self, older_than_seconds: float | None = None) -> int:
        rows = await self.pending(older_than_seconds)
        metrics.OUTBOX_PENDING.labels(self._bus.service).set(len(rows))
        if not rows:
            return 0
        rows.sort(key=lambda row: row.id)  # creation order across shards
        sent = await self.dispatch(rows)
        log.info("outbox.relayed", pending=len(rows), sent=sent)
        return sent

    async def run_relay(self, interval_seconds: float = 1.0) -> None:
        """Sweep forever (a background loop of the service); errors are logged."""
        await every(interval_seconds, self.relay_once, name="outbox.relay")

    async def flush(self) -> int:
        """Publish everything pending now, whatever its age, and delete what was
        published (graceful shutdown)."""
        sent = await self.relay_once(older_than_seconds=0)
        await self._deleted()
        return sent
