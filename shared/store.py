"""One DynamoDB transaction for a unit of work: state items, the events that
announce them (outbox rows) and, for event handlers, the inbox record.

`commit` returns False, having written nothing, when the inbox says the event
was already handled; a failed state condition raises `ConditionFailed` with
the positions of the caller's items that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.dynamo import ConditionFailed, TransactItem, transact
from shared.events import Envelope
from shared.inbox import Inbox
from shared.outbox import Outbox

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


class Store:
    def __init__(
        self,
        client: DynamoDBClient,
        *,
        inbox: Inbox | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.client = client
        self.inbox = inbox
        self.outbox = outbox

    async def commit(
        self,
        items: Sequence[TransactItem] = (),
        *,
        events: Sequence[Envelope] = (),
        once: tuple[str, str] | None = None,
        token: str | None = None,
    ) -> bool:
        """Write `items`, the outbox rows of `events` and (with `once=(consumer,
        event_id)`) the inbox record atomically; then publish the events."""
        batch = list(items)
        rows = []
        if events:
            if self.outbox is None:
                raise RuntimeError("this store has no outbox")
            rows = [self.outbox.row(e) for e in events]
            batch += [row.item(self.outbox.table) for row in rows]
        inbox_at: int | None = None
        if once is not None:
            if self.inbox is None:
                raise RuntimeError("this store has no inbox")
            inbox_at = len(batch)
            batch.append(self.inbox.record(*once))
        try:
            await transact(self.client, batch, token=token)
        except ConditionFailed as exc:
            if inbox_at is not None and inbox_at in exc.indexes:
                return False
            raise
        if rows and self.outbox is not None:
            await self.outbox.dispatch(rows)
        return True
