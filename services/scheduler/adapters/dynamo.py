"""The schedule in DynamoDB: the only module of the scheduler that talks to it.

Tables (`<prefix>-scheduler-<suffix>`, see deploy/README.md):

- `rooms`: one item per room. The `by_phase` index (`phase`, `due_key`) serves
  both the listings (`GET /schedule?status=`) and the activation loop: the
  key `due_key` is `<epoch of the next transition, 10 digits>#<room_id>` (the
  start while scheduled, the end while active), so "due now" is the keyed
  range `phase = scheduled AND due_key < <now + 1>`: it reads only due rooms
  however many lie in the future, and rooms missed while the scheduler was down
  are still there, however old.
- `titles`: one claim per title that a room which has not ended holds,
  written in the same transaction as the room, conditional on the title being
  free (absent, its room over: `expires_at <= now`, or ours). The claim's
  `expires_at` is the room's end, so it frees itself.
- `leases`: the activation lease (`name` = "activation", `owner`, `until`):
  the replica that holds it runs the activation loop, the others stand by.
- `outbox` (shared.outbox): the events, written in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from shared.dynamo import (
    ConditionFailed,
    Index,
    TableSpec,
    TransactionConflict,
    TransactItem,
    conditional,
    from_item,
    to_item,
)
from shared.pages import query_page
from shared.store import Store

from ..domain import Phase, Room, TitleTaken
from ..ports import Change, DueRooms, Page, StaleRooms

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import QueryOutputTypeDef

ROOMS_TABLE = TableSpec(
    "rooms",
    hash_key="room_id",
    indexes=(Index("by_phase", hash_key="phase", range_key="due_key"),),
    ttl_attribute="expires_at",
)
TITLES_TABLE = TableSpec("titles", hash_key="title_key", ttl_attribute="expires_at")
LEASES_TABLE = TableSpec("leases", hash_key="name")
ACTIVATION_LEASE = "activation"

BY_PHASE = "by_phase"
PAGE_KEY = ("room_id", "phase", "due_key")  # the by_phase index's LastEvaluatedKey
# Listings of what is coming show the soonest first; of what is over, the latest.
_NEWEST_FIRST = {Phase.ENDED, Phase.CANCELLED}

Role = Literal["room", "claim", "release"]


def due_key(room: Room) -> str:
    return f"{room.due_at:010d}#{room.room_id}"


# The attributes that keys, conditions and TTL need stay top-level; the rest
# of the room is one JSON document. Nothing filters on those fields server-side,
# and a stand-in like moto spends its time per attribute: a burst of 1,000 due
# rooms reads and writes several times faster this way (docs/scheduler.md).
_DOCUMENT_FIELDS = (
    "title",
    "topic",
    "start_at",
    "end_at",
    "duration_minutes",
    "media_region",
    "scheduled_by",
    "created_at",
    "updated_at",
    "correlation_id",
    "cancelled_by",
    "ended_at",
)


def room_item(room: Room, retention_seconds: int) -> dict[str, Any]:
    document = {name: getattr(room, name) for name in _DOCUMENT_FIELDS}
    return to_item(
        {
            "room_id": room.room_id,
            "phase": room.phase.value,
            "due_key": due_key(room),
            "revision": room.revision,
            "expires_at": room.expires_at(retention_seconds),
            "room": json.dumps(
                {k: v for k, v in document.items() if v is not None}, separators=(",", ":")
            ),
        }
    )


def room_from_item(item: dict[str, Any]) -> Room:
    v = from_item(item)
    doc = json.loads(v["room"])
    return Room(
        room_id=v["room_id"],
        title=doc["title"],
        topic=doc.get("topic", ""),
        start_at=doc["start_at"],
        duration_minutes=doc["duration_minutes"],
        media_region=doc["media_region"],
        scheduled_by=doc["scheduled_by"],
        phase=Phase(v["phase"]),
        revision=v["revision"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        correlation_id=doc.get("correlation_id"),
        cancelled_by=doc.get("cancelled_by"),
        ended_at=doc.get("ended_at"),
    )


class DynamoSchedule:
    """`ScheduleStore` over DynamoDB, writing through the shared `Store` (outbox)."""

    def __init__(
        self,
        client: DynamoDBClient,
        store: Store,
        *,
        rooms_table: str,
        titles_table: str,
        leases_table: str,
        retention_seconds: int,
    ) -> None:
        self._client = client
        self._store = store
        self.rooms_table = rooms_table
        self.titles_table = titles_table
        self.leases_table = leases_table
        self._retention = retention_seconds

    async def get(self, room_id: str, *, now: float) -> Room | None:
        response = await self._client.get_item(
            TableName=self.rooms_table, Key={"room_id": {"S": room_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if not item or int(item["expires_at"]["N"]) <= now:
            return None
        return room_from_item(item)

    # --- writes ------------------------------------------------------------------

    async def save(self, changes: Sequence[Change], *, now: float) -> None:
        items, roles = self._items(changes, int(now))
        events = [event for change in changes for event in change.events]
        while True:
            try:
                await self._store.commit(items, events=events)
                return
            except TransactionConflict as exc:
                # DynamoDB cancels a transaction that races another one on the
                # same item: the other writer is about to win, which for us is
                # the same as having lost
                lost = [roles[i] for i in exc.indexes if i < len(roles)]
                if any(role == "claim" for role, _ in lost):
                    raise TitleTaken("another room is taking this title right now") from None
                stale = [room_id for role, room_id in lost if role in ("room", "release")]
                raise StaleRooms(stale or [r for _, r in roles]) from None
            except ConditionFailed as exc:
                failed = [roles[i] for i in exc.indexes if i < len(roles)]
                stale = [room_id for role, room_id in failed if role == "room"]
                if stale:
                    raise StaleRooms(stale) from None
                if any(role == "claim" for role, _ in failed):
                    raise TitleTaken("another room that has not ended has this title") from None
                # Only releases failed: those titles are no longer ours (our
                # room ended and someone took them); write the rest without them.
                keep = [i for i in range(len(items)) if i not in set(exc.indexes)]
                if not failed or len(keep) == len(items):
                    raise
                items = [items[i] for i in keep]
                roles = [roles[i] for i in keep]

    def _items(
        self, changes: Sequence[Change], now: int
    ) -> tuple[list[TransactItem], list[tuple[Role, str]]]:
        items: list[TransactItem] = []
        roles: list[tuple[Role, str]] = []
        for change in changes:
            before, after = change.before, change.after
            items.append(self._put_room(before, after))
            roles.append(("room", after.room_id))
            if after.holds_title and (
                before is None
                or not before.holds_title
                or before.title_key != after.title_key
                or before.end_at != after.end_at
            ):
                items.append(self._claim_title(after, now))
                roles.append(("claim", after.room_id))
            if (
                before is not None
                and before.holds_title
                and (after.phase is Phase.CANCELLED or before.title_key != after.title_key)
            ):
                items.append(self._release_title(before))
                roles.append(("release", after.room_id))
        return items, roles

    def _put_room(self, before: Room | None, after: Room) -> TransactItem:
        put: dict[str, Any] = {
            "TableName": self.rooms_table,
            "Item": room_item(after, self._retention),
        }
        if before is None:
            put["ConditionExpression"] = "attribute_not_exists(room_id)"
        else:
            put["ConditionExpression"] = "#revision = :revision AND #phase = :phase"
            put["ExpressionAttributeNames"] = {"#revision": "revision", "#phase": "phase"}
            put["ExpressionAttributeValues"] = {
                ":revision": {"N": str(before.revision)},
                ":phase": {"S": before.phase.value},
            }
        return {"Put": put}

    def _claim_title(self, room: Room, now: int) -> TransactItem:
        return {
            "Put": {
                "TableName": self.titles_table,
                "Item": to_item(
                    {
                        "title_key": room.title_key,
                        "room_id": room.room_id,
                        "title": room.title,
                        "expires_at": room.end_at,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(title_key) "
                "OR expires_at <= :now OR room_id = :room_id",
                "ExpressionAttributeValues": {
                    ":now": {"N": str(now)},
                    ":room_id": {"S": room.room_id},
                },
            }
        }

    def _release_title(self, room: Room) -> TransactItem:
        return {
            "Delete": {
                "TableName": self.titles_table,
                "Key": {"title_key": {"S": room.title_key}},
                "ConditionExpression": "room_id = :room_id",
                "ExpressionAttributeValues": {":room_id": {"S": room.room_id}},
            }
        }

    # --- keyed reads ---------------------------------------------------------------

    async def due(self, phase: Phase, *, now: float, limit: int) -> DueRooms:
        # due_key < "<now + 1>" <=> the transition's epoch second <= now
        upper = f"{int(now) + 1:010d}"
        response = await self._client.query(
            TableName=self.rooms_table,
            IndexName=BY_PHASE,
            KeyConditionExpression="#phase = :phase AND due_key < :upper",
            ExpressionAttributeNames={"#phase": "phase"},
            ExpressionAttributeValues={":phase": {"S": phase.value}, ":upper": {"S": upper}},
            Limit=limit,
        )
        return _due_rooms(response)

    async def upcoming(self, phase: Phase, *, after: float, until: float, limit: int) -> DueRooms:
        response = await self._client.query(
            TableName=self.rooms_table,
            IndexName=BY_PHASE,
            KeyConditionExpression="#phase = :phase AND due_key BETWEEN :low AND :high",
            ExpressionAttributeNames={"#phase": "phase"},
            ExpressionAttributeValues={
                ":phase": {"S": phase.value},
                ":low": {"S": f"{int(after) + 1:010d}"},
                ":high": {"S": f"{int(until):010d}#~"},  # every room of that second
            },
            Limit=limit,
        )
        return _due_rooms(response)

    async def lead(self, owner: str, *, now: float, seconds: float) -> bool:
        return await conditional(
            self._client.update_item(
                TableName=self.leases_table,
                Key={"name": {"S": ACTIVATION_LEASE}},
                UpdateExpression="SET #owner = :owner, #until = :until",
                ConditionExpression="attribute_not_exists(#owner) OR #owner = :owner"
                " OR #until < :now",
                ExpressionAttributeNames={"#owner": "owner", "#until": "until"},
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"N": f"{now + seconds:.3f}"},
                    ":now": {"N": f"{now:.3f}"},
                },
            )
        )

    async def page(self, phase: Phase, *, limit: int, cursor: str | None, now: float) -> Page:
        items, next_cursor = await query_page(
            self._client,
            cursor,
            names=PAGE_KEY,
            fixed={"phase": phase.value},
            TableName=self.rooms_table,
            IndexName=BY_PHASE,
            KeyConditionExpression="#phase = :phase",
            # TTL deletes "typically within a few days": skip what has expired.
            FilterExpression="expires_at > :now",
            ExpressionAttributeNames={"#phase": "phase"},
            ExpressionAttributeValues={
                ":phase": {"S": phase.value},
                ":now": {"N": str(int(now))},
            },
            ScanIndexForward=phase not in _NEWEST_FIRST,
            Limit=limit,
        )
        return Page(rooms=[room_from_item(item) for item in items], cursor=next_cursor)


def _due_rooms(response: QueryOutputTypeDef) -> DueRooms:
    """One page of a query on the phase index, with what reading it cost."""
    rooms = [room_from_item(item) for item in response.get("Items", [])]
    return DueRooms(
        rooms=rooms,
        items_read=int(response.get("ScannedCount", len(rooms))),
        more="LastEvaluatedKey" in response,
    )
