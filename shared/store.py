"""One DynamoDB transaction for a unit of work: state items, the events that
announce them (outbox rows) and, for event handlers, the inbox record.

`Store.commit` is the one call. `UnitOfWork` collects a use case's writes
through an adapter's domain-named methods, together with what undoes the side
effects made before the commit (a Chime call): if the commit fails, or the use
case fails before it, those compensations run, so that Chime and the tables
do not drift apart. Its failures are typed for use cases: `Stale` (a
condition no longer held: another writer was first) and `Busy` (the items
kept racing other transactions).
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Self

from shared.dynamo import (
    ConditionFailed,
    TransactionConflict,
    TransactItem,
    retry_conflicts,
    transact,
)
from shared.events import Envelope
from shared.inbox import Inbox
from shared.logging import get_logger
from shared.outbox import Outbox, OutboxRow

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = get_logger("belfry.store")


class Stale(Exception):
    """A unit of work's condition did not hold; `roles` names the writes that failed."""

    def __init__(self, roles: Sequence[str]) -> None:
        super().__init__(f"changed meanwhile: {list(roles)}")
        self.roles = tuple(roles)


class Busy(Exception):
    """A unit of work kept racing other transactions on the same items."""


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
        event_id)`) the inbox record atomically; then publish the events.

        False, having written nothing, when the inbox says the event was
        already handled; a failed state condition raises `ConditionFailed` with
        the positions of the caller's items that failed."""
        rows = await self.write(items, events=events, once=once, token=token)
        if rows is None:
            return False
        await self.publish(rows)
        return True

    async def write(
        self,
        items: Sequence[TransactItem] = (),
        *,
        events: Sequence[Envelope] = (),
        once: tuple[str, str] | None = None,
        token: str | None = None,
    ) -> list[OutboxRow] | None:
        """The transaction of `commit`, without publishing: the outbox rows
        written, or None for an event the inbox has seen."""
        batch = list(items)
        rows = []
        if events:
            if self.outbox is None:
                raise RuntimeError("this store has no outbox")
            rows = [self.outbox.row(*events)]
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
                return None
            raise
        return rows

    async def publish(self, rows: Sequence[OutboxRow]) -> None:
        """Publish committed outbox rows now; what fails is left to the relay."""
        if not rows or self.outbox is None:
            return
        try:
            await self.outbox.dispatch(rows)
        except Exception as exc:  # committed: the outbox relay publishes what is left
            log.warning("store.dispatch_deferred", error=repr(exc), events=len(rows))

    def unit(self) -> UnitOfWork:
        return UnitOfWork(self)


class UnitOfWork:
    """`async with store.unit() as work: ...; await work.commit()`.

    Adapters subclass it with domain-named methods that `add` their items under
    a role; use cases call those, `emit` events, `compensate` side effects, and
    commit once. A conflict with another transaction is retried a few times."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._items: list[TransactItem] = []
        self._roles: list[str] = []
        self._events: list[Envelope] = []
        self._once: tuple[str, str] | None = None
        self._undo: list[Callable[[], Awaitable[object]]] = []
        self.committed = False

    def add(self, item: TransactItem, role: str = "") -> None:
        self._items.append(item)
        self._roles.append(role)

    def emit(self, *events: Envelope) -> None:
        self._events.extend(events)

    def once(self, consumer: str, event_id: str) -> None:
        """Record the event being handled in the inbox, in the same transaction."""
        self._once = (consumer, event_id)

    def compensate(self, undo: Callable[[], Awaitable[object]]) -> None:
        """What takes back a side effect made for this work, should it not commit."""
        self._undo.append(undo)

    @property
    def empty(self) -> bool:
        return not (self._items or self._events or self._once)

    async def commit(self, *, token: str | None = None) -> bool:
        """True when written; False for an event the inbox has seen (nothing is
        written). Raises `Stale` or `Busy`, after the compensations ran."""
        try:
            rows = await retry_conflicts(
                lambda: self._store.write(
                    self._items, events=self._events, once=self._once, token=token
                )
            )
        except ConditionFailed as exc:
            await self.undo()
            roles = [self._roles[i] for i in exc.indexes if i < len(self._roles)]
            raise Stale(roles) from exc
        except TransactionConflict as exc:
            await self.undo()
            raise Busy("the items are busy with other writes; try again") from exc
        except Exception:  # not on cancellation: the write may still have landed
            await self.undo()
            raise
        self.committed = True  # from here on, nothing is taken back
        if rows is None:
            return False
        await self._store.publish(rows)
        return True

    async def undo(self) -> None:
        """Run the compensations, newest first, once; a failing one is logged."""
        undo, self._undo = self._undo, []
        for step in reversed(undo):
            try:
                await step()
            except Exception as exc:
                log.error("store.compensation_failed", error=repr(exc))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        if isinstance(error, Exception) and not self.committed:
            await self.undo()
