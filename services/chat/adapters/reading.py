"""Read state over DynamoDB: channel summaries, per-person read marks, and the
listing of channels by last activity (docs/chat.md, "Unread counts").

summaries    channel_id -> seq (messages numbered so far), last_message,
             activity ("<last message id or creation time>#<channel_id>");
             `by_activity`: listing_shard (one of ACTIVITY_SHARDS) + activity, so that
             every post's index write spreads over several GSI partitions
read_states  user_id, channel_id -> read_seq, up_to, read_at, mentions (the
             seqs of messages that mentioned the person, after the mark)
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.dynamo import (
    Index,
    TableSpec,
    TransactItem,
    batch_get,
    from_item,
    to_item,
)
from shared.events import Envelope
from shared.pages import decode_cursor, encode_cursor
from shared.store import Stale, Store

from ..domain import Channel, Message
from ..unread import NEVER, ReadState, Summary, last_message_of, seed_activity

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

SUMMARIES = TableSpec(
    "summaries",
    hash_key="channel_id",
    indexes=(Index("by_activity", "listing_shard", "activity"),),
)
READ_STATES = TableSpec("read_states", hash_key="user_id", range_key="channel_id")
READ_TABLES = (SUMMARIES, READ_STATES)

# A GSI partition takes ~1000 writes/s; every post rewrites its channel's
# `activity`, so the index is spread over this many partition keys and a
# listing queries them all (in parallel) and merges. Changing it needs a backfill.
ACTIVITY_SHARDS = 4


def shard_of(channel_id: str) -> str:
    return f"activity-{zlib.crc32(channel_id.encode()) % ACTIVITY_SHARDS}"


def _summary(values: Mapping[str, Any]) -> Summary:
    last = values.get("last_message")
    channel = None
    if "channel_arn" in values and "kind" in values:
        channel = Channel(
            channel_id=values["channel_id"],
            kind=values["kind"],
            customer_id=values["customer_id"],
            channel_arn=values["channel_arn"],
            manager_id=values.get("manager_id"),
        )
    return Summary(
        channel_id=values["channel_id"],
        seq=int(values.get("seq", 0)),
        activity=values.get("activity", ""),
        last_message=dict(last) if isinstance(last, dict) else None,
        channel=channel,
    )


def _state(values: Mapping[str, Any] | None) -> ReadState | None:
    if values is None:
        return None
    return ReadState(
        read_seq=int(values["read_seq"]) if "read_seq" in values else None,
        up_to=values.get("up_to"),
        mentions=tuple(int(m) for m in values.get("mentions") or ()),
    )


class ReadTables:
    """The two tables, and the transaction items posts and channel writes add."""

    def __init__(self, client: DynamoDBClient, store: Store, names: Mapping[str, str]) -> None:
        self._client = client
        self._store = store
        self.summaries = names[SUMMARIES.suffix]
        self.read_states = names[READ_STATES.suffix]
        self.channels = names["channels"]
        self.memberships = names["memberships"]
        self.messages = names["messages"]

    # --- what chat's other writes add to their transactions ---------------------------

    def seed_item(self, channel: Channel, created_at: float | None = None) -> TransactItem:
        """A channel's summary (created if missing, so that every channel is
        listed, messages or not) with a copy of the channel's fields: every
        channel write carries it, so the listing reads channels from the index."""
        channel_id = channel.channel_id
        values: dict[str, Any] = {
            ":shard": {"S": shard_of(channel_id)},
            ":a": {"S": seed_activity(channel_id, created_at or time.time())},
            ":zero": {"N": "0"},
            ":kind": {"S": channel.kind},
            ":customer": {"S": channel.customer_id},
            ":arn": {"S": channel.channel_arn},
        }
        expression = (
            "SET listing_shard = :shard, activity = if_not_exists(activity, :a), "
            "seq = if_not_exists(seq, :zero), #k = :kind, customer_id = :customer, "
            "channel_arn = :arn"
        )
        if channel.manager_id:
            expression += ", manager_id = :manager"
            values[":manager"] = {"S": channel.manager_id}
        else:
            expression += " REMOVE manager_id"
        return {
            "Update": {
                "TableName": self.summaries,
                "Key": {"channel_id": {"S": channel_id}},
                "UpdateExpression": expression,
                "ExpressionAttributeNames": {"#k": "kind"},
                "ExpressionAttributeValues": values,
            }
        }

    def touch_items(self, message: Message, seq: int) -> list[Any]:
        """A post's summary (last message, activity), the sender's read mark (one's
        own message is read) and a mention seq on each mentioned person's row."""
        channel_id = message.channel_id
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self.summaries,
                    "Key": {"channel_id": {"S": channel_id}},
                    "UpdateExpression": (
                        "SET listing_shard = :shard, activity = :a, last_message = :m"
                    ),
                    "ExpressionAttributeValues": {
                        ":shard": {"S": shard_of(channel_id)},
                        ":a": {"S": f"{message.message_id}#{channel_id}"},
                        ":m": to_item({"m": last_message_of(message)})["m"],
                    },
                }
            },
            {
                "Update": {
                    "TableName": self.read_states,
                    "Key": _state_key(message.sender_id, channel_id),
                    "UpdateExpression": "SET read_seq = :s, up_to = :m, read_at = :t",
                    "ExpressionAttributeValues": {
                        ":s": {"N": str(seq)},
                        ":m": {"S": message.message_id},
                        ":t": {"S": message.posted_at},
                    },
                }
            },
        ]
        for user_id in dict.fromkeys(message.mentions):
            if user_id == message.sender_id:
                continue  # one item per row in a transaction; and one's own mention is read
            items.append(
                {
                    "Update": {
                        "TableName": self.read_states,
                        "Key": _state_key(user_id, channel_id),
                        "UpdateExpression": "SET mentions = list_append("
                        "if_not_exists(mentions, :none), :seq)",
                        "ExpressionAttributeValues": {
                            ":none": {"L": []},
                            ":seq": {"L": [{"N": str(seq)}]},
                        },
                    }
                }
            )
        return items

    # --- reads and read marks -------------------------------------------------------

    async def next_seq(self, channel_id: str) -> int:
        """The next message number of the channel (an atomic counter)."""
        response = await self._client.update_item(
            TableName=self.summaries,
            Key={"channel_id": {"S": channel_id}},
            UpdateExpression="SET listing_shard = :shard ADD seq :one",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":shard": {"S": shard_of(channel_id)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["seq"]["N"])

    async def message_seq(self, channel_id: str, message_id: str) -> int | None:
        """The number of a message of this channel (0: posted before numbering);
        None: no such message in this channel."""
        response = await self._client.get_item(
            TableName=self.messages,
            Key={"channel_id": {"S": channel_id}, "message_id": {"S": message_id}},
            ProjectionExpression="seq, message_id",
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return int(item["seq"]["N"]) if "seq" in item else NEVER

    async def state_and_summary(
        self, user_id: str, channel_id: str
    ) -> tuple[ReadState | None, Summary | None]:
        _, summaries, states, _ = await self.rows(
            user_id, [channel_id], channels=False, memberships=False
        )
        return states.get(channel_id), summaries.get(channel_id)

    async def save_read(
        self,
        user_id: str,
        channel_id: str,
        state: ReadState,
        read_at: str,
        *,
        expected: ReadState | None,
        event: Envelope,
    ) -> bool:
        """The new mark and its event, only if the row is still `expected`
        (False: it changed meanwhile; read again)."""
        names = {"#m": "mentions"}
        values: dict[str, Any] = {
            ":s": {"N": str(state.read_seq)},
            ":u": {"S": state.up_to or ""},
            ":t": {"S": read_at},
            ":kept": {"L": [{"N": str(m)} for m in state.mentions]},
        }
        conditions = []
        if expected is None or expected.read_seq is None:
            conditions.append("attribute_not_exists(read_seq)")
        else:
            conditions.append("read_seq = :old")
            values[":old"] = {"N": str(expected.read_seq)}
        if expected is None or not expected.mentions:
            conditions.append("(attribute_not_exists(#m) OR size(#m) = :zero)")
            values[":zero"] = {"N": "0"}
        else:
            conditions.append("size(#m) = :n")
            values[":n"] = {"N": str(len(expected.mentions))}
        update = {
            "TableName": self.read_states,
            "Key": _state_key(user_id, channel_id),
            "UpdateExpression": "SET read_seq = :s, up_to = :u, read_at = :t, #m = :kept",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        work = self._store.unit()
        work.add({"Update": update}, "read_state")
        work.emit(event)
        try:
            await work.commit()
        except Stale:
            return False
        return True

    # --- the listing ------------------------------------------------------------------

    async def activity_page(
        self, cursor: str | None, limit: int
    ) -> tuple[list[Summary], str | None]:
        """Channel ids, newest activity first: each shard queried from the
        cursor, merged; the cursor is the last activity handed out."""
        start = decode_cursor(cursor, names=("activity",))
        before = start["activity"]["S"] if start else None

        async def shard(n: int) -> tuple[list[Summary], bool]:
            query: dict[str, Any] = {
                "TableName": self.summaries,
                "IndexName": "by_activity",
                "KeyConditionExpression": "listing_shard = :s",
                "ExpressionAttributeValues": {":s": {"S": f"activity-{n}"}},
                "ScanIndexForward": False,
                "Limit": limit,
            }
            if before is not None:
                query["KeyConditionExpression"] += " AND activity < :a"
                query["ExpressionAttributeValues"][":a"] = {"S": before}
            response = await self._client.query(**query)
            found = [_summary(from_item(i)) for i in response.get("Items", [])]
            return found, "LastEvaluatedKey" in response

        results = await asyncio.gather(*(shard(n) for n in range(ACTIVITY_SHARDS)))
        merged = sorted(
            (s for found, _ in results for s in found), key=lambda s: s.activity, reverse=True
        )
        more = len(merged) > limit or any(truncated for _, truncated in results)
        page = merged[:limit]
        last = page[-1].activity if page else None
        next_cursor = encode_cursor({"activity": {"S": last}}) if more and last else None
        return page, next_cursor

    async def rows(
        self,
        user_id: str,
        channel_ids: Sequence[str],
        *,
        channels: bool = True,
        summaries: bool = True,
        memberships: bool = True,
    ) -> tuple[dict[str, Channel], dict[str, Summary], dict[str, ReadState], set[str]]:
        """The channels, their summaries, the caller's read states and which of
        them the caller is a member of: one BatchGetItem (100 keys a call) over
        the four tables, whatever number of channels the caller is in."""
        from .dynamo import CHANNEL_PK, _channel

        keys: dict[str, list[dict[str, Any]]] = {
            self.read_states: [_state_key(user_id, c) for c in channel_ids],
        }
        if summaries:
            keys[self.summaries] = [{"channel_id": {"S": c}} for c in channel_ids]
        if channels:
            keys[self.channels] = [
                {"pk": {"S": CHANNEL_PK}, "channel_id": {"S": c}} for c in channel_ids
            ]
        if memberships:
            keys[self.memberships] = [
                {"channel_id": {"S": c}, "user_id": {"S": user_id}} for c in channel_ids
            ]
        found = await batch_get(self._client, keys) if channel_ids else {}
        by_id = {c.channel_id: c for c in map(_channel, found.get(self.channels, []))}
        rows = [_summary(from_item(i)) for i in found.get(self.summaries, [])]
        states: dict[str, ReadState] = {}
        for item in found.get(self.read_states, []):
            values = from_item(item)
            state = _state(values)
            if state is not None:
                states[values["channel_id"]] = state
        member_of = {i["channel_id"]["S"] for i in found.get(self.memberships, [])}
        return by_id, {s.channel_id: s for s in rows}, states, member_of


def number_message(items: Sequence[Any], table: str, message_id: str, seq: int) -> None:
    """Give the message's own Put (already among a transaction's `items`) its
    number: a transaction may not write one item twice."""
    for item in items:
        put = item.get("Put") if isinstance(item, dict) else None
        if put and put["TableName"] == table and put["Item"].get("message_id") == {"S": message_id}:
            put["Item"]["seq"] = {"N": str(seq)}


def _state_key(user_id: str, channel_id: str) -> dict[str, Any]:
    return {"user_id": {"S": user_id}, "channel_id": {"S": channel_id}}
