"""Per-user feeds in DynamoDB (the notifier's `Feed` and `FeedReader`).

Every user has a partition `user#<id>` whose rows are numbered
1, 2, 3, … (the sort key; the cursor WebSocket clients resume from) and a
head item (`sk = 0`) holding the last number. Rows are appended in one
TransactWriteItems with a conditional update of each head, so a row becomes
visible only after every row before it: a reader that has seen row n and
finds n+2 can never later find n+1. Each append also writes a receipt
(`receipt#<event id>`, conditional on absence) that makes the append
idempotent and tells other replicas whose feeds it touched.

Appends are group-committed: whatever arrives while a transaction is in
flight goes into the next one (up to 100 items), so a burst costs a few
transactions, not one per event, and heads are not fought over in-process.
Up to `MAX_IN_FLIGHT` transactions are in flight at once, on disjoint sets of
feeds: a busy person (a manager in hundreds of channels) holds back only the
appends that extend their feed, and those share one head update per
transaction.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from shared.dynamo import (
    ConditionFailed,
    TableSpec,
    TransactItem,
    batch_get_table,
    from_item,
    to_item,
    transact,
)
from shared.logging import get_logger

from ..domain import Audience, FeedEntry, FeedRow
from .feed_queue import Append, Tx, take

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = get_logger("belfry.notifier")

FEED_TABLE = TableSpec(
    "feed", hash_key="pk", range_key="sk", range_type="N", ttl_attribute="expires_at"
)

HEAD = 0
# Rows live in partitions of BUCKET consecutive numbers (`user#<id>#<seq // BUCKET>`),
# so that no partition grows without bound however long a feed becomes.
BUCKET = 256
_MAX_ATTEMPTS = 20
# Transactions in flight at once (on disjoint feeds).
MAX_IN_FLIGHT = 4


def _user_pk(user_id: str) -> str:
    return f"user#{user_id}"


def _rows_pk(user_id: str, seq: int) -> str:
    return f"user#{user_id}#{seq // BUCKET}"


def _receipt_pk(key: str) -> str:
    return f"receipt#{key}"


def _settle(future: asyncio.Future[bool], result: bool) -> None:
    if not future.done():  # its handler may have been cancelled (shutdown)
        future.set_result(result)


class DynamoFeed:
    """Per-user feeds: group-committed appends, ordered reads, receipts."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        retention_seconds: int,
        on_written: Callable[[dict[str, list[FeedRow]]], None] = lambda rows: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.table = table
        self._retention = retention_seconds
        self._on_written = on_written
        self._clock = clock
        self._pending: deque[Append] = deque()
        self._wake = asyncio.Event()
        self._heads: OrderedDict[str, int] = OrderedDict()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._busy: set[str] = set()  # users whose feed a transaction in flight extends
        self._in_flight: dict[str, int] = {}  # key -> appends of it queued or committing

    # --- writing ------------------------------------------------------------------

    async def append(
        self, key: str, entries: Sequence[FeedEntry], notify: set[str] | None = None
    ) -> bool:
        """Append `entries` once per `key`: False if that key was appended before.
        The receipt names `notify` (default: the entries' users). Needs `run()`
        going (a background loop of the service)."""
        users = {e.user_id for e in entries} if notify is None else notify
        if not entries:
            return await self._receipt_only(key, users)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(Append(key, list(entries), users, future))
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        self._wake.set()
        try:
            return await future
        finally:
            left = self._in_flight.pop(key, 1) - 1
            if left:
                self._in_flight[key] = left

    async def _receipt_only(self, key: str, users: set[str]) -> bool:
        try:
            await transact(self._client, [self._receipt_item(key, users)])
        except ConditionFailed:
            return False
        self._mark_recent(key)
        return True

    async def run(self) -> None:
        """The group-commit loop: up to `MAX_IN_FLIGHT` transactions at a time,
        never two that extend the same person's feed (the second needs the head
        the first writes), so one busy person's appends wait only for their own."""
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending and len(running) < MAX_IN_FLIGHT:
                    tx = self._take()
                    if not tx.appends:
                        break  # all that waits extends a feed being written: after it
                    self._busy.update(tx.users)
                    task = asyncio.create_task(self._settle_tx(tx))
                    running.add(task)
                    task.add_done_callback(functools.partial(self._finished, running, tx))
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _finished(self, running: set[asyncio.Task[None]], tx: Tx, task: asyncio.Task[None]) -> None:
        running.discard(task)
        self._busy.difference_update(tx.users)
        self._wake.set()

    async def _settle_tx(self, tx: Tx) -> None:
        try:
            await self._commit(tx)
        except asyncio.CancelledError:
            for append in tx.appends:
                if not append.done.done():
                    append.done.cancel()
            raise
        except Exception as exc:
            log.warning("feed.append_failed", error=repr(exc), appends=len(tx.appends))
            for append in tx.appends:
                if not append.done.done():
                    append.done.set_exception(exc)

    def _take(self) -> Tx:
        return take(self._pending, self._busy)

    async def _commit(self, tx: Tx) -> None:
        appends = list(tx.appends)
        for _ in range(_MAX_ATTEMPTS):
            if not appends:
                return
            users = sorted({u for a in appends for u in a.users})
            await self._load_heads([u for u in users if u not in self._heads])
            items, roles, new_heads, rows = self._items(appends, users)
            try:
                await transact(self._client, items)
            except ConditionFailed as exc:
                for index in exc.indexes:
                    kind, value = roles[index]
                    if kind == "receipt":  # appended before: a redelivery
                        append = next(a for a in appends if a.key == value)
                        appends.remove(append)
                        _settle(append.done, False)
                    elif kind == "head":  # another replica appended for this user
                        self._heads.pop(value, None)
                continue
            for user, head in new_heads.items():
                self._remember_head(user, head)
            for append in appends:
                self._mark_recent(append.key)
                _settle(append.done, True)
            self._on_written(rows)
            return
        raise RuntimeError("feed append kept conflicting")

    def _items(
        self, appends: list[Append], users: list[str]
    ) -> tuple[list[TransactItem], list[tuple[str, str]], dict[str, int], dict[str, list[FeedRow]]]:
        now = int(self._clock())
        expires = now + self._retention
        items: list[TransactItem] = []
        roles: list[tuple[str, str]] = []
        heads = {u: self._heads[u] for u in users}
        rows: dict[str, list[FeedRow]] = {}
        texts: dict[int, str] = {}  # an event's recipients share its data: encode it once
        for append in appends:
            items.append(self._receipt_item(append.key, append.notify))
            roles.append(("receipt", append.key))
            for entry in append.entries:
                heads[entry.user_id] += 1
                seq = heads[entry.user_id]
                text = texts.get(id(entry.data))
                if text is None:
                    text = texts[id(entry.data)] = json.dumps(entry.data)
                items.append(self._row_item(entry, seq, expires, text))
                roles.append(("row", entry.user_id))
                rows.setdefault(entry.user_id, []).append(
                    FeedRow(seq, entry.frame_type, entry.data, entry.audience)
                )
        for user in users:
            old, new = self._heads[user], heads[user]
            condition = "attribute_not_exists(head)" if old == 0 else "head = :old"
            values: dict[str, Any] = {":new": {"N": str(new)}}
            if old:
                values[":old"] = {"N": str(old)}
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": _user_pk(user)}, "sk": {"N": str(HEAD)}},
                        "UpdateExpression": "SET head = :new",
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
            roles.append(("head", user))
        return items, roles, heads, rows

    def _receipt_item(self, key: str, users: set[str]) -> TransactItem:
        now = int(self._clock())
        values = {
            "pk": _receipt_pk(key),
            "sk": HEAD,
            "users": json.dumps(sorted(users)),
            "expires_at": now + self._retention,
        }
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": {":now": {"N": str(now)}},
            }
        }

    def _row_item(self, entry: FeedEntry, seq: int, expires: int, text: str) -> TransactItem:
        values = {
            "pk": _rows_pk(entry.user_id, seq),
            "sk": seq,
            "event_id": entry.event_id,
            "frame_type": entry.frame_type,
            "data": text,
            "channel_kind": entry.audience.channel_kind,
            "customer_id": entry.audience.customer_id,
            "subject_id": entry.audience.subject_id,
            "expires_at": expires,
        }
        return {"Put": {"TableName": self.table, "Item": to_item(values)}}

    async def _load_heads(self, users: list[str]) -> None:
        if not users:
            return
        keys = [{"pk": {"S": _user_pk(u)}, "sk": {"N": str(HEAD)}} for u in users]
        found = {
            row["pk"].removeprefix("user#"): int(row.get("head", 0))
            for row in await self._batch_get(keys)
        }
        for user in users:
            self._remember_head(user, found.get(user, 0))

    def _remember_head(self, user: str, head: int) -> None:
        self._heads[user] = head
        self._heads.move_to_end(user)
        while len(self._heads) > 50_000:
            self._heads.popitem(last=False)

    def _mark_recent(self, key: str) -> None:
        self._recent[key] = None
        while len(self._recent) > 100_000:
            self._recent.popitem(last=False)

    # --- reading ------------------------------------------------------------------

    async def head(self, user_id: str) -> int:
        response = await self._client.get_item(
            TableName=self.table,
            Key={"pk": {"S": _user_pk(user_id)}, "sk": {"N": str(HEAD)}},
            ConsistentRead=True,
        )
        return int(from_item(response.get("Item", {})).get("head", 0))

    async def read(self, user_id: str, after: int, limit: int = 100) -> tuple[list[FeedRow], bool]:
        """Up to `limit` (≤ 100) rows after `after`, in order; True if there may be
        more. Numbers are contiguous, so the rows are fetched by key (one
        BatchGetItem; a Query's cost grows with the table on moto server) and
        the first missing number ends the feed."""
        limit = max(1, min(limit, 100))
        seqs = range(after + 1, after + 1 + limit)
        keys = [{"pk": {"S": _rows_pk(user_id, q)}, "sk": {"N": str(q)}} for q in seqs]
        found = {int(item["sk"]): item for item in await self._batch_get(keys)}
        now = int(self._clock())
        rows = []
        for seq in seqs:
            value = found.get(seq)
            if value is None:
                break
            expired = int(value.get("expires_at", now)) < now  # TTL deletes late
            rows.append(
                FeedRow(
                    seq=seq,
                    frame_type="" if expired else value["frame_type"],
                    data={} if expired else json.loads(value["data"]),
                    audience=Audience(
                        value.get("channel_kind"), value.get("customer_id"), value.get("subject_id")
                    ),
                )
            )
        return rows, len(rows) == limit

    async def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [from_item(i) for i in await batch_get_table(self._client, self.table, keys)]

    async def receipts(self, keys: Sequence[str]) -> dict[str, set[str]]:
        """The users each done append touched (keys not appended yet are absent)."""
        wanted = [{"pk": {"S": _receipt_pk(k)}, "sk": {"N": str(HEAD)}} for k in keys]
        now = int(self._clock())
        return {
            row["pk"].removeprefix("receipt#"): set(json.loads(row["users"]))
            for row in await self._batch_get(wanted)
            if int(row.get("expires_at", 0)) >= now
        }

    def written_here(self, key: str) -> bool:
        """This process appended `key` (or found it appended) lately."""
        return key in self._recent

    def in_flight(self, key: str) -> bool:
        """`key` waits for, or is in, this process's next transaction."""
        return key in self._in_flight
