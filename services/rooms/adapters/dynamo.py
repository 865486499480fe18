"""rooms' tables: the room read model (with its Chime meeting) and attendees.

`rooms`: one row per room id ever seen, written by the scheduler's events and
by joins (the cached Chime `Meeting`, its generation, the creation lease).
Active rooms carry `listed` = "active" and `list_key` = `<end_at>#<room_id>`,
so the landing page is a keyed Query on the sparse `listed` index that skips
ended rooms by key (TTL deletes late; the key range does not care).
`attendees`: one row per (room, user) with the Chime `Attendee`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from services.rooms.domain import (
    ACTIVE,
    CANCELLED,
    ENDED,
    LISTED,
    SCHEDULED,
    AttendeeRecord,
    Room,
)
from shared.dynamo import Index, TableSpec, TransactItem, from_item, to_item

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

T = TypeVar("T")

ROOMS_TABLE = TableSpec(
    "rooms",
    hash_key="room_id",
    indexes=(Index("listed", hash_key="listed", range_key="list_key"),),
    ttl_attribute="expires_at",
)
ATTENDEES_TABLE = TableSpec(
    "attendees", hash_key="room_id", range_key="user_id", ttl_attribute="expires_at"
)
TABLES = (ROOMS_TABLE, ATTENDEES_TABLE)


def is_transaction_conflict(exc: BaseException) -> bool:
    """DynamoDB refused a write because another transaction holds one of its
    items (a busy room row): cancelled without any write, safe to try again."""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    if error.get("Code") == "TransactionConflictException":
        return True
    if error.get("Code") != "TransactionCanceledException":
        return False
    reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
    return "TransactionConflict" in reasons or "TransactionConflict" in error.get("Message", "")


async def retry_conflicts(
    write: Callable[[], Awaitable[T]], attempts: int = 4, base_delay: float = 0.02
) -> T:
    """Run `write`, again after a jittered pause while it hits transaction conflicts."""
    for attempt in range(attempts):
        try:
            return await write()
        except ClientError as exc:
            if not is_transaction_conflict(exc) or attempt == attempts - 1:
                raise
        await asyncio.sleep(random.uniform(0, base_delay * 2**attempt))
    raise AssertionError("unreachable")


def list_key(end_at: int, room_id: str) -> str:
    return f"{end_at:012d}#{room_id}"


def _values(values: Mapping[str, Any]) -> dict[str, Any]:
    return to_item(values)


def room_from_item(item: Mapping[str, Any]) -> Room:
    row = from_item(item)
    meeting = json.loads(row["meeting"]) if "meeting" in row else None
    return Room(
        room_id=row["room_id"],
        status=row.get("status", SCHEDULED),
        title=row.get("title", ""),
        topic=row.get("topic", ""),
        media_region=row.get("media_region", ""),
        start_at=int(row.get("start_at", 0)),
        end_at=int(row.get("end_at", 0)),
        attendee_count=int(row.get("attendee_count", 0)),
        meeting=meeting,
        meeting_generation=int(row.get("meeting_generation", 0)),
        lease_owner=row.get("lease_owner"),
        lease_until=int(row.get("lease_until", 0)),
    )


def attendee_from_item(item: Mapping[str, Any]) -> AttendeeRecord:
    row = from_item(item)
    return AttendeeRecord(
        room_id=row["room_id"],
        user_id=row["user_id"],
        meeting_id=row["meeting_id"],
        attendee=json.loads(row["attendee"]),
        joined_at=int(row.get("joined_at", 0)),
    )


class RoomTables:
    """Reads, conditional writes and transaction items over rooms' two tables."""

    def __init__(self, client: DynamoDBClient, names: Mapping[str, str]) -> None:
        self.client = client
        self.rooms = names[ROOMS_TABLE.suffix]
        self.attendees = names[ATTENDEES_TABLE.suffix]

    # --- reads ---------------------------------------------------------------

    async def room(self, room_id: str) -> Room | None:
        response = await self.client.get_item(
            TableName=self.rooms, Key={"room_id": {"S": room_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else room_from_item(item)

    async def room_and_attendee(
        self, room_id: str, user_id: str
    ) -> tuple[Room | None, AttendeeRecord | None]:
        """Both rows in one BatchGetItem (one round trip on the join path)."""
        request: dict[str, Any] = {
            self.rooms: {"Keys": [{"room_id": {"S": room_id}}], "ConsistentRead": True},
            self.attendees: {
                "Keys": [{"room_id": {"S": room_id}, "user_id": {"S": user_id}}],
                "ConsistentRead": True,
            },
        }
        found: dict[str, list[Any]] = {self.rooms: [], self.attendees: []}
        for attempt in range(6):
            response = await self.client.batch_get_item(RequestItems=request)
            for table, items in response.get("Responses", {}).items():
                found[table].extend(items)
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                break
            await asyncio.sleep(0.01 * 2**attempt)
        else:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "busy"}},
                "BatchGetItem",
            )
        room = room_from_item(found[self.rooms][0]) if found[self.rooms] else None
        attendee = attendee_from_item(found[self.attendees][0]) if found[self.attendees] else None
        return room, attendee

    async def attendee(self, room_id: str, user_id: str) -> AttendeeRecord | None:
        response = await self.client.get_item(
            TableName=self.attendees,
            Key={"room_id": {"S": room_id}, "user_id": {"S": user_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else attendee_from_item(item)

    async def listed_rooms(self, now: float) -> list[Room]:
        """Active rooms whose end is still ahead (by key), started by now."""
        rooms: list[Room] = []
        start: dict[str, Any] | None = None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            response = await self.client.query(
                TableName=self.rooms,
                IndexName="listed",
                KeyConditionExpression="listed = :listed AND list_key >= :after",
                ExpressionAttributeValues={
                    ":listed": {"S": LISTED},
                    ":after": {"S": f"{int(now) + 1:012d}"},
                },
                **extra,
            )
            rooms += [room_from_item(i) for i in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return sorted(
            (r for r in rooms if r.is_joinable(now)), key=lambda r: (r.start_at, r.room_id)
        )

    async def room_attendees(self, room_id: str) -> list[AttendeeRecord]:
        records: list[AttendeeRecord] = []
        start: dict[str, Any] | None = None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            response = await self.client.query(
                TableName=self.attendees,
                KeyConditionExpression="room_id = :room",
                ExpressionAttributeValues={":room": {"S": room_id}},
                ConsistentRead=True,
                **extra,
            )
            records += [attendee_from_item(i) for i in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return records

    # --- the room's lifecycle (transaction items for the event handlers) ------

    def scheduled(self, data: Mapping[str, Any], event_ms: int, expires_at: int) -> TransactItem:
        """Create or update a scheduled room; never touches an active or ended one,
        nor applies an older RoomScheduled over a newer one."""
        return self._lifecycle(
            data,
            status=SCHEDULED,
            event_ms=event_ms,
            expires_at=expires_at,
            condition="attribute_not_exists(room_id) OR (#status = :scheduled"
            " AND (attribute_not_exists(event_ms) OR event_ms <= :event_ms))",
        )

    def activated(self, data: Mapping[str, Any], event_ms: int, expires_at: int) -> TransactItem:
        """Activate (and list) a room unless it has ended or been cancelled."""
        return self._lifecycle(
            data,
            status=ACTIVE,
            event_ms=event_ms,
            expires_at=expires_at,
            condition="attribute_not_exists(room_id) OR #status IN (:scheduled, :active)",
        )

    def _lifecycle(
        self,
        data: Mapping[str, Any],
        *,
        status: str,
        event_ms: int,
        expires_at: int,
        condition: str,
    ) -> TransactItem:
        values: dict[str, Any] = {
            ":title": data["title"],
            ":topic": data["topic"],
            ":media_region": data["media_region"],
            ":start_at": int(data["start_at"]),
            ":end_at": int(data["end_at"]),
            ":status": status,
            ":event_ms": event_ms,
            ":expires_at": expires_at,
            ":zero": 0,
            ":scheduled": SCHEDULED,
        }
        update = (
            "SET title = :title, topic = :topic, media_region = :media_region,"
            " start_at = :start_at, end_at = :end_at, #status = :status,"
            " event_ms = :event_ms, expires_at = :expires_at,"
            " attendee_count = if_not_exists(attendee_count, :zero)"
        )
        if status == ACTIVE:
            values[":active"] = ACTIVE
            values[":listed"] = LISTED
            values[":list_key"] = list_key(int(data["end_at"]), str(data["room_id"]))
            update += ", listed = :listed, list_key = :list_key"
        return {
            "Update": {
                "TableName": self.rooms,
                "Key": {"room_id": {"S": str(data["room_id"])}},
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": _values(values),
            }
        }

    def finished(self, room_id: str, status: str, event_ms: int, expires_at: int) -> TransactItem:
        """End or cancel a room (a tombstone if it was never seen): unlisted for
        good, whatever arrives later."""
        return {
            "Update": {
                "TableName": self.rooms,
                "Key": {"room_id": {"S": room_id}},
                "UpdateExpression": "SET #status = :status, event_ms = :event_ms,"
                " expires_at = :expires_at REMOVE listed, list_key, lease_owner, lease_until",
                "ConditionExpression": "attribute_not_exists(room_id)"
                " OR NOT (#status IN (:ended, :cancelled))",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": _values(
                    {
                        ":status": status,
                        ":event_ms": event_ms,
                        ":expires_at": expires_at,
                        ":ended": ENDED,
                        ":cancelled": CANCELLED,
                    }
                ),
            }
        }

    async def forget_meeting(self, room_id: str, meeting_id: str) -> None:
        """Drop the cached meeting of an ended room once Chime has deleted it."""
        try:
            await self.client.update_item(
                TableName=self.rooms,
                Key={"room_id": {"S": room_id}},
                UpdateExpression="REMOVE meeting, meeting_id",
                ConditionExpression="meeting_id = :meeting",
                ExpressionAttributeValues={":meeting": {"S": meeting_id}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def count(self, room_id: str, delta: int) -> TransactItem:
        return {
            "Update": {
                "TableName": self.rooms,
                "Key": {"room_id": {"S": room_id}},
                "UpdateExpression": "ADD attendee_count :delta",
                "ConditionExpression": "attribute_exists(room_id)",
                "ExpressionAttributeValues": {":delta": {"N": str(delta)}},
            }
        }

    # --- find-or-create of the meeting ---------------------------------------

    async def take_lease(
        self, room_id: str, owner: str, now: int, until: int, stale_meeting_id: str | None
    ) -> bool:
        """Claim the right to create the room's next meeting: only while the room
        is active, has no meeting (or still has exactly the stale one) and no
        live lease. True if this caller won."""
        if stale_meeting_id is None:
            meeting_condition = "attribute_not_exists(meeting_id)"
            values: dict[str, Any] = {}
        else:
            meeting_condition = "meeting_id = :stale"
            values = {":stale": stale_meeting_id}
        values.update({":owner": owner, ":now": now, ":until": until, ":active": ACTIVE})
        try:
            await self.client.update_item(
                TableName=self.rooms,
                Key={"room_id": {"S": room_id}},
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression=f"#status = :active AND {meeting_condition}"
                " AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_values(values),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    async def release_lease(self, room_id: str, owner: str) -> None:
        try:
            await self.client.update_item(
                TableName=self.rooms,
                Key={"room_id": {"S": room_id}},
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def meeting_created(
        self, room_id: str, owner: str, meeting: Mapping[str, Any], generation: int
    ) -> TransactItem:
        """Record the new meeting; fails unless this caller still holds the lease
        and the room is still active."""
        return {
            "Update": {
                "TableName": self.rooms,
                "Key": {"room_id": {"S": room_id}},
                "UpdateExpression": "SET meeting = :meeting, meeting_id = :meeting_id,"
                " meeting_generation = :generation REMOVE lease_owner, lease_until",
                "ConditionExpression": "lease_owner = :owner AND #status = :active",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": _values(
                    {
                        ":meeting": json.dumps(meeting, sort_keys=True),
                        ":meeting_id": str(meeting["MeetingId"]),
                        ":generation": generation,
                        ":owner": owner,
                        ":active": ACTIVE,
                    }
                ),
            }
        }

    # --- attendees -----------------------------------------------------------

    def attendee_put(
        self, record: AttendeeRecord, expires_at: int, replaces: str | None
    ) -> TransactItem:
        """The user's attendee row; `replaces` is the attendee id the caller read
        (None: there was no row), so two racing joins of one user cannot both win."""
        if replaces is None:
            condition = "attribute_not_exists(user_id)"
            values: dict[str, Any] = {}
        else:
            condition = "attendee_id = :replaces"
            values = {":replaces": {"S": replaces}}
        item = to_item(
            {
                "room_id": record.room_id,
                "user_id": record.user_id,
                "meeting_id": record.meeting_id,
                "attendee_id": record.attendee_id,
                "attendee": json.dumps(record.attendee, sort_keys=True),
                "joined_at": record.joined_at,
                "expires_at": expires_at,
            }
        )
        put: dict[str, Any] = {
            "TableName": self.attendees,
            "Item": item,
            "ConditionExpression": condition,
        }
        if values:
            put["ExpressionAttributeValues"] = values
        return {"Put": put}

    def attendee_delete(self, room_id: str, user_id: str, attendee_id: str) -> TransactItem:
        return {
            "Delete": {
                "TableName": self.attendees,
                "Key": {"room_id": {"S": room_id}, "user_id": {"S": user_id}},
                "ConditionExpression": "attendee_id = :attendee",
                "ExpressionAttributeValues": {":attendee": {"S": attendee_id}},
            }
        }
