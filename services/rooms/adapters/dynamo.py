"""`RoomStore` over DynamoDB: the only module of rooms that talks to it.

Writes go through the shared `Store`: state, the events that announce it
(outbox) and, for event handlers, the inbox record, in one TransactWriteItems.
A write that races another transaction on the room's row is retried briefly,
then answered as `room_busy` (503).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from shared.dynamo import (
    MAX_TRANSACT_ITEMS,
    ConditionFailed,
    TransactionConflict,
    TransactItem,
    batch_get,
    conditional,
    query_all,
    retry_conflicts,
    to_item,
)
from shared.events import Envelope
from shared.store import Store

from ..chime_events import PresenceRecord
from ..domain import ACTIVE, LISTED, Applied, AttendeeRecord, Lifecycle, Room, room_busy
from ..ports import AttendeeWrite, EventKey, Meeting, MeetingRef, PresenceWrite
from .rows import (
    ATTENDEES_TABLE,
    MEETING_MARKER,
    PRESENCE_TABLE,
    ROOMS_TABLE,
    attendee_delete,
    attendee_from_item,
    attendee_key,
    attendee_put,
    lifecycle_item,
    marker_ended_item,
    marker_put,
    meeting_item,
    presence_count_item,
    presence_from_item,
    presence_key,
    presence_put,
    presence_update,
    room_from_item,
    room_key,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

T = TypeVar("T")

# A meeting lasts at most 24 h; Chime's events about it come within that.
MARKER_SECONDS = 3 * 86400


class DynamoRooms:
    def __init__(self, client: DynamoDBClient, store: Store, names: Mapping[str, str]) -> None:
        self._client = client
        self._store = store
        self.rooms = names[ROOMS_TABLE.suffix]
        self.attendees_table = names[ATTENDEES_TABLE.suffix]
        self.presence_table = names[PRESENCE_TABLE.suffix]

    # --- reads -------------------------------------------------------------------

    async def room(self, room_id: str) -> Room | None:
        response = await self._client.get_item(
            TableName=self.rooms, Key=room_key(room_id), ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else room_from_item(item)

    async def room_and_attendees(
        self, room_id: str, user_ids: Sequence[str]
    ) -> tuple[Room | None, dict[str, AttendeeRecord]]:
        keys = {
            self.rooms: [room_key(room_id)],
            self.attendees_table: [attendee_key(room_id, u) for u in dict.fromkeys(user_ids)],
        }
        found = await batch_get(self._client, keys)
        rooms = found[self.rooms]
        records = (attendee_from_item(i) for i in found[self.attendees_table])
        return (
            room_from_item(rooms[0]) if rooms else None,
            {r.user_id: r for r in records},
        )

    async def attendee(self, room_id: str, user_id: str) -> AttendeeRecord | None:
        response = await self._client.get_item(
            TableName=self.attendees_table, Key=attendee_key(room_id, user_id), ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else attendee_from_item(item)

    async def active_rooms(self, now: float) -> list[Room]:
        items = await query_all(
            self._client,
            TableName=self.rooms,
            IndexName="listed",
            KeyConditionExpression="listed = :listed AND list_key >= :after",
            ExpressionAttributeValues={
                ":listed": {"S": LISTED},
                ":after": {"S": f"{int(now) + 1:012d}"},
            },
        )
        rooms = (room_from_item(i) for i in items)
        return sorted(
            (r for r in rooms if r.is_joinable(now)), key=lambda r: (r.start_at, r.room_id)
        )

    async def attendees(self, room_id: str) -> list[AttendeeRecord]:
        items = await query_all(
            self._client,
            TableName=self.attendees_table,
            KeyConditionExpression="room_id = :room",
            ExpressionAttributeValues={":room": {"S": room_id}},
            ConsistentRead=True,
        )
        return [attendee_from_item(i) for i in items]

    # --- presence ----------------------------------------------------------------

    async def meeting_presence(
        self, meeting_id: str, attendee_ids: Sequence[str]
    ) -> tuple[MeetingRef | None, dict[str, PresenceRecord]]:
        wanted = [MEETING_MARKER, *dict.fromkeys(attendee_ids)]
        found = await batch_get(
            self._client, {self.presence_table: [presence_key(meeting_id, a) for a in wanted]}
        )
        meeting: MeetingRef | None = None
        records: dict[str, PresenceRecord] = {}
        for item in found[self.presence_table]:
            record = presence_from_item(item)
            if record.attendee_id == MEETING_MARKER:
                meeting = MeetingRef(meeting_id, record.room_id, bool(item.get("ended")))
            else:
                records[record.attendee_id] = record
        return meeting, records

    async def presence(self, meeting_id: str) -> list[PresenceRecord]:
        items = await query_all(
            self._client,
            TableName=self.presence_table,
            KeyConditionExpression="meeting_id = :meeting",
            ExpressionAttributeValues={":meeting": {"S": meeting_id}},
        )
        records = (presence_from_item(i) for i in items)
        return [r for r in records if r.attendee_id != MEETING_MARKER]

    async def save_presence(self, write: PresenceWrite) -> bool:
        items = [presence_update(self.presence_table, c) for c in write.changes]
        if write.attendee_count is not None or write.end_meeting:
            count = (
                write.room.attendee_count if write.attendee_count is None else write.attendee_count
            )
            items.append(
                presence_count_item(
                    self.rooms, write.room, write.meeting_id, count, end_meeting=write.end_meeting
                )
            )
        if write.meeting_ended:
            items.append(marker_ended_item(self.presence_table, write.meeting_id))
        return await self._write(items, write.events)

    # --- the scheduler's events ----------------------------------------------------

    async def apply(
        self, change: Lifecycle, *, once: EventKey, events: Sequence[Envelope] = ()
    ) -> Applied:
        return await self._once(lifecycle_item(self.rooms, change), once, events)

    async def _once(
        self, item: TransactItem, once: EventKey, events: Sequence[Envelope] = ()
    ) -> Applied:
        try:
            applied = await _busy(lambda: self._store.commit([item], once=once, events=events))
        except ConditionFailed:  # the row has moved past this event: record it only
            recorded = await _busy(lambda: self._store.commit(once=once))
            return "superseded" if recorded else "duplicate"
        return "applied" if applied else "duplicate"

    async def forget_meeting(self, room_id: str, meeting_id: str) -> None:
        await conditional(
            self._client.update_item(
                TableName=self.rooms,
                Key=room_key(room_id),
                UpdateExpression="REMOVE meeting, meeting_id",
                ConditionExpression="meeting_id = :meeting",
                ExpressionAttributeValues={":meeting": {"S": meeting_id}},
            )
        )

    # --- find-or-create of the meeting -------------------------------------------

    async def take_lease(
        self, room_id: str, owner: str, now: int, until: int, stale_meeting_id: str | None
    ) -> bool:
        if stale_meeting_id is None:
            meeting_condition = "attribute_not_exists(meeting_id)"
            values: dict[str, object] = {}
        else:
            meeting_condition = "meeting_id = :stale"
            values = {":stale": stale_meeting_id}
        values.update({":owner": owner, ":now": now, ":until": until, ":active": ACTIVE})
        return await conditional(
            self._client.update_item(
                TableName=self.rooms,
                Key=room_key(room_id),
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression=f"#status = :active AND {meeting_condition}"
                " AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item(values),
            )
        )

    async def release_lease(self, room_id: str, owner: str) -> None:
        await conditional(
            self._client.update_item(
                TableName=self.rooms,
                Key=room_key(room_id),
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        )

    async def save_meeting(
        self,
        room_id: str,
        owner: str,
        meeting: Meeting,
        generation: int,
        events: Sequence[Envelope],
    ) -> bool:
        items = [
            meeting_item(self.rooms, room_id, owner, meeting, generation),
            marker_put(
                self.presence_table,
                room_id,
                str(meeting["MeetingId"]),
                int(time.time()) + MARKER_SECONDS,
            ),
        ]
        return await self._write(items, events)

    # --- attendees -------------------------------------------------------------

    async def save_attendees(self, writes: Sequence[AttendeeWrite]) -> set[str]:
        not_written: set[str] = set()
        for chunk in _chunks(writes):
            if await self._write(self._attendee_items(chunk), [e for w in chunk for e in w.events]):
                continue
            # a concurrent join of one of them wrote first: find out whose, one by one
            for write in chunk:
                if not await self._write(self._attendee_items([write]), write.events):
                    not_written.add(write.record.user_id)
        return not_written

    def _attendee_items(self, writes: Sequence[AttendeeWrite]) -> list[TransactItem]:
        """Each user's attendee row and the new attendee's presence row."""
        items = []
        for w in writes:
            items.append(attendee_put(self.attendees_table, w.record, w.expires_at, w.replaces))
            items.append(presence_put(self.presence_table, w.record, w.expires_at))
        return items

    async def remove_attendee(
        self, room_id: str, user_id: str, attendee_id: str, events: Sequence[Envelope]
    ) -> bool:
        items = [attendee_delete(self.attendees_table, room_id, user_id, attendee_id)]
        return await self._write(items, events)

    async def _write(self, items: list[TransactItem], events: Sequence[Envelope]) -> bool:
        """State and its events in one transaction; False if a condition failed."""
        try:
            await _busy(lambda: self._store.commit(items, events=events))
        except ConditionFailed:
            return False
        return True


def _chunks(writes: Sequence[AttendeeWrite]) -> list[list[AttendeeWrite]]:
    """Writes grouped into transactions of at most 100 items: two rows each, and
    the outbox row (every event of the transaction) once."""
    per_transaction = (MAX_TRANSACT_ITEMS - 1) // 2
    return [list(writes[i : i + per_transaction]) for i in range(0, len(writes), per_transaction)]


async def _busy(write: Callable[[], Awaitable[T]]) -> T:
    """The write, retried while another transaction holds the room; then 503."""
    try:
        return await retry_conflicts(write)
    except TransactionConflict as exc:
        raise room_busy() from exc
