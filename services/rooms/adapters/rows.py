"""rooms' rows as DynamoDB holds them: the tables, and the items and
transaction items the store writes (conditions included).

`rooms`: one row per room id ever seen, written by the scheduler's events and
by joins (the cached Chime `Meeting`, its generation, the creation lease).
Active rooms carry `listed` = "active" and `list_key` = `<end_at>#<room_id>`,
so the landing page is a keyed Query on the sparse `listed` index that skips
ended rooms by key (TTL deletes late; the key range does not care).
`attendees`: one row per (room, user) with the Chime `Attendee`.
`presence`: per Chime meeting (hash `meeting_id`), one row per attendee that
rooms created (`attendee_id`: its room and user, whether it is connected, the
order of the last Chime event applied) and one marker row (`attendee_id` =
"~meeting": the meeting's room, and whether Chime ended it), so that a Chime
event, which names only the meeting and the attendee, is placed by key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from shared.dynamo import Index, TableSpec, TransactItem, from_item, to_item

from ..chime_events import PresenceChange, PresenceRecord
from ..domain import ACTIVE, CANCELLED, ENDED, LISTED, SCHEDULED, AttendeeRecord, Lifecycle, Room

ROOMS_TABLE = TableSpec(
    "rooms",
    hash_key="room_id",
    indexes=(Index("listed", hash_key="listed", range_key="list_key"),),
    ttl_attribute="expires_at",
)
ATTENDEES_TABLE = TableSpec(
    "attendees", hash_key="room_id", range_key="user_id", ttl_attribute="expires_at"
)
PRESENCE_TABLE = TableSpec(
    "presence", hash_key="meeting_id", range_key="attendee_id", ttl_attribute="expires_at"
)
TABLES = (ROOMS_TABLE, ATTENDEES_TABLE, PRESENCE_TABLE)
MEETING_MARKER = "~meeting"


def list_key(end_at: int, room_id: str) -> str:
    return f"{end_at:012d}#{room_id}"


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
        presence_version=int(row.get("presence_version", 0)),
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


def presence_from_item(item: Mapping[str, Any]) -> PresenceRecord:
    row = from_item(item)
    return PresenceRecord(
        meeting_id=row["meeting_id"],
        attendee_id=row["attendee_id"],
        room_id=row["room_id"],
        user_id=row.get("user_id", ""),
        connected=bool(row.get("connected", False)),
        order=int(row.get("presence_order", 0)),
    )


def presence_key(meeting_id: str, attendee_id: str) -> dict[str, Any]:
    return {"meeting_id": {"S": meeting_id}, "attendee_id": {"S": attendee_id}}


def room_key(room_id: str) -> dict[str, Any]:
    return {"room_id": {"S": room_id}}


def attendee_key(room_id: str, user_id: str) -> dict[str, Any]:
    return {"room_id": {"S": room_id}, "user_id": {"S": user_id}}


# --- the room's lifecycle ---------------------------------------------------------

# Which states a change may be applied over: a terminal state wins whatever
# arrives later, and an older RoomScheduled never overwrites a newer one.
_OVER = {
    SCHEDULED: "attribute_not_exists(room_id) OR (#status = :scheduled"
    " AND (attribute_not_exists(event_ms) OR event_ms <= :event_ms))",
    ACTIVE: "attribute_not_exists(room_id) OR #status IN (:scheduled, :active)",
    ENDED: "attribute_not_exists(room_id) OR NOT (#status IN (:ended, :cancelled))",
}
_OVER[CANCELLED] = _OVER[ENDED]


def lifecycle_item(table: str, change: Lifecycle) -> TransactItem:
    """The room row moved to `change.status` (a tombstone for a room ended
    before it was ever seen), conditional on the row not having moved past it."""
    values: dict[str, Any] = {
        ":status": change.status,
        ":event_ms": change.event_ms,
        ":expires_at": change.expires_at,
        ":scheduled": SCHEDULED,
        ":active": ACTIVE,
        ":ended": ENDED,
        ":cancelled": CANCELLED,
    }
    update = "SET #status = :status, event_ms = :event_ms, expires_at = :expires_at"
    details = change.details
    if details is None:  # ended or cancelled: unlisted for good, no lease left
        update += " REMOVE listed, list_key, lease_owner, lease_until"
    else:
        values.update(
            {
                ":title": details.title,
                ":topic": details.topic,
                ":media_region": details.media_region,
                ":start_at": details.start_at,
                ":end_at": details.end_at,
                ":zero": 0,
            }
        )
        update += (
            ", title = :title, topic = :topic, media_region = :media_region,"
            " start_at = :start_at, end_at = :end_at,"
            " attendee_count = if_not_exists(attendee_count, :zero)"
        )
        if change.status == ACTIVE:
            values[":listed"] = LISTED
            values[":list_key"] = list_key(details.end_at, change.room_id)
            update += ", listed = :listed, list_key = :list_key"
    named = set(re.findall(r":\w+", f"{update} {_OVER[change.status]}"))
    used = {name: value for name, value in values.items() if name in named}
    return {
        "Update": {
            "TableName": table,
            "Key": room_key(change.room_id),
            "UpdateExpression": update,
            "ConditionExpression": _OVER[change.status],
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": to_item(used),
        }
    }


def presence_count_item(
    table: str, room: Room, meeting_id: str, count: int, *, end_meeting: bool
) -> TransactItem:
    """The room's count of connected attendees, on condition that it is still
    the one read (its version) and the room's meeting is still `meeting_id`;
    `end_meeting`: Chime ended it, the next join creates a new one."""
    update = "SET attendee_count = :count, presence_version = :next"
    if end_meeting:
        update += " REMOVE meeting, meeting_id"
    values: dict[str, Any] = {
        ":count": count,
        ":next": room.presence_version + 1,
        ":meeting": meeting_id,
    }
    if room.presence_version:
        version = "presence_version = :read"
        values[":read"] = room.presence_version
    else:  # a row from before counts were versioned
        version = "attribute_not_exists(presence_version)"
    return {
        "Update": {
            "TableName": table,
            "Key": room_key(room.room_id),
            "UpdateExpression": update,
            "ConditionExpression": f"meeting_id = :meeting AND {version}",
            "ExpressionAttributeValues": to_item(values),
        }
    }


def presence_put(table: str, record: AttendeeRecord, expires_at: int) -> TransactItem:
    """A new attendee's presence row: not connected, no event applied yet."""
    return {
        "Put": {
            "TableName": table,
            "Item": to_item(
                {
                    "meeting_id": record.meeting_id,
                    "attendee_id": record.attendee_id,
                    "room_id": record.room_id,
                    "user_id": record.user_id,
                    "connected": False,
                    "presence_order": 0,
                    "expires_at": expires_at,
                }
            ),
            "ConditionExpression": "attribute_not_exists(attendee_id)",
        }
    }


def marker_put(table: str, room_id: str, meeting_id: str, expires_at: int) -> TransactItem:
    item = {"meeting_id": meeting_id, "attendee_id": MEETING_MARKER, "room_id": room_id}
    return {"Put": {"TableName": table, "Item": to_item({**item, "expires_at": expires_at})}}


def marker_ended_item(table: str, meeting_id: str) -> TransactItem:
    return {
        "Update": {
            "TableName": table,
            "Key": presence_key(meeting_id, MEETING_MARKER),
            "UpdateExpression": "SET ended = :yes",
            "ConditionExpression": "attribute_exists(attendee_id)",
            "ExpressionAttributeValues": {":yes": {"BOOL": True}},
        }
    }


def presence_update(table: str, change: PresenceChange) -> TransactItem:
    """The attendee's presence moved, on condition that it is still the one read."""
    after = change.after
    return {
        "Update": {
            "TableName": table,
            "Key": presence_key(after.meeting_id, after.attendee_id),
            "UpdateExpression": "SET connected = :connected, presence_order = :order",
            "ConditionExpression": "presence_order = :read",
            "ExpressionAttributeValues": to_item(
                {":connected": after.connected, ":order": after.order, ":read": change.before.order}
            ),
        }
    }


# --- meetings and attendees ---------------------------------------------------------


def meeting_item(
    table: str, room_id: str, owner: str, meeting: Mapping[str, Any], generation: int
) -> TransactItem:
    """Record the new meeting; fails unless `owner` still holds the lease and
    the room is still active."""
    return {
        "Update": {
            "TableName": table,
            "Key": room_key(room_id),
            "UpdateExpression": "SET meeting = :meeting, meeting_id = :meeting_id,"
            " meeting_generation = :generation, attendee_count = :zero"
            " ADD presence_version :one REMOVE lease_owner, lease_until",
            "ConditionExpression": "lease_owner = :owner AND #status = :active",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": to_item(
                {
                    ":meeting": json.dumps(meeting, sort_keys=True),
                    ":meeting_id": str(meeting["MeetingId"]),
                    ":generation": generation,
                    ":owner": owner,
                    ":active": ACTIVE,
                    ":zero": 0,
                    ":one": 1,
                }
            ),
        }
    }


def attendee_put(
    table: str, record: AttendeeRecord, expires_at: int, replaces: str | None
) -> TransactItem:
    """The user's attendee row, conditional on the row the caller read
    (`replaces`: its attendee id, None: no row)."""
    put: dict[str, Any] = {
        "TableName": table,
        "Item": to_item(
            {
                "room_id": record.room_id,
                "user_id": record.user_id,
                "meeting_id": record.meeting_id,
                "attendee_id": record.attendee_id,
                "attendee": json.dumps(record.attendee, sort_keys=True),
                "joined_at": record.joined_at,
                "expires_at": expires_at,
            }
        ),
    }
    if replaces is None:
        put["ConditionExpression"] = "attribute_not_exists(user_id)"
    else:
        put["ConditionExpression"] = "attendee_id = :replaces"
        put["ExpressionAttributeValues"] = {":replaces": {"S": replaces}}
    return {"Put": put}


def attendee_delete(table: str, room_id: str, user_id: str, attendee_id: str) -> TransactItem:
    return {
        "Delete": {
            "TableName": table,
            "Key": attendee_key(room_id, user_id),
            "ConditionExpression": "attendee_id = :attendee",
            "ExpressionAttributeValues": {":attendee": {"S": attendee_id}},
        }
    }
