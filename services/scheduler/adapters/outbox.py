"""The shared outbox with a cheaper clean-up for bursts of transitions.

`shared.outbox.Outbox.dispatch` deletes each published row with its own
DeleteItem, one round trip per event; a tick that activates a thousand rooms
would spend most of its time there (and, on moto, behind its global lock).
Here a transaction's rows are published first (each room's in order, rooms
concurrently), then the confirmed ones are deleted 25 per BatchWriteItem. A
row whose delete is lost is published again by the relay: at least once, as
before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from shared.bus import PublishFailed
from shared.logging import get_logger, log_context
from shared.outbox import Outbox, OutboxRow

log = get_logger("belfry.scheduler.outbox")

BATCH_WRITE_MAX = 25


class BatchingOutbox(Outbox):
    async def dispatch(self, rows: Sequence[OutboxRow]) -> int:
        """Publish, then delete what the broker confirmed. A room's events go in
        order and stop at its first failure (the relay takes the rest, still in
        order); different rooms' events are independent and go concurrently, so
        a transaction of 40 transitions waits for about one confirm, not 40."""
        by_room: dict[str, list[OutboxRow]] = {}
        for row in rows:
            room_id = str(getattr(row.envelope.data, "room_id", row.id))
            by_room.setdefault(room_id, []).append(row)
        results = await asyncio.gather(*(self._publish_in_order(g) for g in by_room.values()))
        published = [row for group in results for row in group]
        await self._forget(published)
        return len(published)

    async def _publish_in_order(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        published: list[OutboxRow] = []
        for row in rows:
            with log_context(event_id=row.envelope.event_id):
                try:
                    await self._bus.publish(row.envelope)
                except PublishFailed as exc:
                    log.warning(
                        "outbox.publish_failed", error=str(exc), event_type=row.envelope.type
                    )
                    break
            published.append(row)
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
