"""Recording fakes of rooms' ports: Chime meetings in dicts, and a `RoomStore`
in dicts that enforces the same conditions as the DynamoDB adapter
(services/rooms/adapters/rows.py and dynamo.py).

`FakeRoomStore.published` is the fake's outbox: the events of every write
that went through, in commit order, and nothing from a write whose condition
failed. Every method yields to the event loop once before it does anything,
so concurrent use cases interleave between a read and the write that follows
it, as they do over the network. Each method is atomic once it runs, the
way one DynamoDB request is.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from services.rooms.chime_events import PresenceRecord
from services.rooms.domain import (
    ACTIVE,
    SCHEDULED,
    TERMINAL,
    Applied,
    AttendeeRecord,
    Lifecycle,
    MeetingUnavailable,
    Room,
)
from services.rooms.ports import (
    Attendee,
    AttendeeRefused,
    AttendeeWrite,
    Delivery,
    EventKey,
    Meeting,
    MeetingGone,
    MeetingRef,
    PresenceWrite,
)
from shared.events import Envelope


@dataclass
class FakeChime:
    """Chime meetings in dicts; the same request token gives the same live meeting."""

    meetings: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> user -> attendee
    tokens: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    attendee_calls: int = 0
    meeting_calls: int = 0  # CreateMeeting calls (`created`: the distinct meetings they made)
    fail_create_meeting: int = 0  # how many CreateMeeting calls fail (throttled)
    gone_always: bool = False
    full: bool = False
    before_create_returns: Callable[[], Awaitable[None]] | None = None

    async def create_meeting(
        self, *, request_token: str, external_meeting_id: str, media_region: str
    ) -> Meeting:
        self.meeting_calls += 1
        await asyncio.sleep(0.01)
        if self.fail_create_meeting:
            self.fail_create_meeting -= 1
            raise MeetingUnavailable("throttled", code="meeting_service_unavailable")
        meeting_id = self.tokens.get(request_token)
        if meeting_id is None or meeting_id not in self.meetings:
            meeting_id = str(uuid.uuid4())
            self.tokens[request_token] = meeting_id
            self.meetings[meeting_id] = {}
            self.created.append(meeting_id)
        if self.before_create_returns is not None:
            await self.before_create_returns()
        return {
            "MeetingId": meeting_id,
            "ExternalMeetingId": external_meeting_id,
            "MediaRegion": media_region,
        }

    async def create_attendees(
        self, meeting_id: str, external_user_ids: Sequence[str]
    ) -> Mapping[str, Attendee | AttendeeRefused]:
        self.attendee_calls += 1
        if self.gone_always or meeting_id not in self.meetings:
            raise MeetingGone(meeting_id)
        result: dict[str, Attendee | AttendeeRefused] = {}
        for user in external_user_ids:
            if self.full:
                result[user] = AttendeeRefused("LimitExceededException", "full")
                continue
            attendee_id = self.meetings[meeting_id].setdefault(user, str(uuid.uuid4()))
            result[user] = {"AttendeeId": attendee_id, "ExternalUserId": user, "JoinToken": "t"}
        return result

    async def delete_attendee(self, meeting_id: str, attendee_id: str) -> None:
        users = self.meetings.get(meeting_id, {})
        for user, attendee in list(users.items()):
            if attendee == attendee_id:
                del users[user]

    async def delete_meeting(self, meeting_id: str) -> None:
        self.deleted.append(meeting_id)
        self.meetings.pop(meeting_id, None)


class FakeClock:
    """A `shared.clock.Clock` that moves only when the test sets `now`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


AttendeeKey = tuple[str, str]  # (room_id, user_id): the attendees table's key


class FakeRoomStore:
    """rooms' two tables and its inbox in dicts, with the adapter's conditions.

    `rooms` holds each room row (its lease and cached meeting included, as the
    table does), `event_ms` / `expires_at` / `listed` the row's attributes a
    `Room` does not carry (`listed`: the sparse `listed` index). `inbox`
    maps each handled event's key to what handling it did the first time;
    `handled` records every `apply` / `count` call and its answer, duplicates
    included; `calls` names every method called, in order."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.event_ms: dict[str, int] = {}
        self.expires_at: dict[str, int] = {}
        self.listed: set[str] = set()
        self.attendee_rows: dict[AttendeeKey, AttendeeRecord] = {}
        self.attendee_expiry: dict[AttendeeKey, int] = {}
        self.attendee_batches: list[int] = []  # rows per save_attendees call
        self.meetings: dict[str, MeetingRef] = {}  # the presence table's markers
        self.presence_rows: dict[tuple[str, str], PresenceRecord] = {}  # (meeting, attendee)
        self.presence_writes: list[PresenceWrite] = []  # every save_presence that went through
        self.inbox: dict[EventKey, Applied] = {}
        self.handled: list[tuple[EventKey, Applied]] = []
        self.published: list[Envelope] = []
        self.calls: list[str] = []

    async def _turn(self, method: str) -> None:
        self.calls.append(method)
        await asyncio.sleep(0)

    def _commit(self, events: Sequence[Envelope]) -> bool:
        self.published.extend(events)
        return True

    # --- reads -------------------------------------------------------------------

    async def room(self, room_id: str) -> Room | None:
        await self._turn("room")
        return self.rooms.get(room_id)

    async def room_and_attendees(
        self, room_id: str, user_ids: Sequence[str]
    ) -> tuple[Room | None, dict[str, AttendeeRecord]]:
        await self._turn("room_and_attendees")
        rows = {u: self.attendee_rows.get((room_id, u)) for u in user_ids}
        return self.rooms.get(room_id), {u: r for u, r in rows.items() if r is not None}

    async def attendee(self, room_id: str, user_id: str) -> AttendeeRecord | None:
        await self._turn("attendee")
        return self.attendee_rows.get((room_id, user_id))

    async def active_rooms(self, now: float) -> list[Room]:
        await self._turn("active_rooms")
        # The index's key range (list_key >= <now + 1>: end_at > now), then the
        # adapter's filter on the window.
        keyed = (self.rooms[r] for r in self.listed if self.rooms[r].end_at >= int(now) + 1)
        window = [r for r in keyed if r.status == ACTIVE and r.start_at <= now < r.end_at]
        return sorted(window, key=lambda r: (r.start_at, r.room_id))

    async def attendees(self, room_id: str) -> list[AttendeeRecord]:
        await self._turn("attendees")
        return [r for (room, _), r in sorted(self.attendee_rows.items()) if room == room_id]

    # --- the scheduler's events ----------------------------------------------------

    def _once(self, once: EventKey, write: Callable[[], bool]) -> Applied:
        """The inbox first (a key seen is a duplicate, nothing written); then the
        state write, or only the inbox record when its condition failed."""
        if once in self.inbox:
            applied: Applied = "duplicate"
        else:
            applied = "applied" if write() else "superseded"
            self.inbox[once] = applied
        self.handled.append((once, applied))
        return applied

    async def apply(
        self, change: Lifecycle, *, once: EventKey, events: Sequence[Envelope] = ()
    ) -> Applied:
        await self._turn("apply")
        return self._once(once, lambda: self._lifecycle(change) and self._commit(events))

    def _lifecycle(self, change: Lifecycle) -> bool:
        room_id, row = change.room_id, self.rooms.get(change.room_id)
        if change.status not in (SCHEDULED, ACTIVE, *TERMINAL):
            raise KeyError(change.status)
        if row is not None:  # else attribute_not_exists(room_id): any change applies
            if change.status == SCHEDULED:
                over = row.status == SCHEDULED and self.event_ms.get(room_id, 0) <= change.event_ms
            elif change.status == ACTIVE:
                over = row.status in (SCHEDULED, ACTIVE)
            else:
                over = row.status not in TERMINAL
            if not over:
                return False
        row = replace(row or Room(room_id, change.status), status=change.status)
        self.event_ms[room_id] = change.event_ms
        self.expires_at[room_id] = change.expires_at
        details = change.details
        if details is None:  # ended or cancelled: unlisted for good, no lease left
            row = replace(row, lease_owner=None, lease_until=0)
            self.listed.discard(room_id)
        else:
            row = replace(
                row,
                title=details.title,
                topic=details.topic,
                media_region=details.media_region,
                start_at=details.start_at,
                end_at=details.end_at,
            )
            if change.status == ACTIVE:
                self.listed.add(room_id)
        self.rooms[room_id] = row
        return True

    # --- presence ----------------------------------------------------------------

    async def meeting_presence(
        self, meeting_id: str, attendee_ids: Sequence[str]
    ) -> tuple[MeetingRef | None, dict[str, PresenceRecord]]:
        await self._turn("meeting_presence")
        rows = {a: self.presence_rows.get((meeting_id, a)) for a in attendee_ids}
        return self.meetings.get(meeting_id), {a: r for a, r in rows.items() if r is not None}

    async def presence(self, meeting_id: str) -> list[PresenceRecord]:
        await self._turn("presence")
        return [r for (m, _), r in sorted(self.presence_rows.items()) if m == meeting_id]

    async def save_presence(self, write: PresenceWrite) -> bool:
        """All or nothing, on the adapter's conditions: every presence row as
        read, and (when the count moves) the room's meeting and version as read."""
        await self._turn("save_presence")
        for change in write.changes:
            key = (change.after.meeting_id, change.after.attendee_id)
            current = self.presence_rows.get(key)
            if current is None or current.order != change.before.order:
                return False
        row = self.rooms.get(write.room.room_id)
        moves = write.attendee_count is not None or write.end_meeting
        if moves and (
            row is None
            or row.meeting_id != write.meeting_id
            or row.presence_version != write.room.presence_version
        ):
            return False
        for change in write.changes:
            self.presence_rows[(change.after.meeting_id, change.after.attendee_id)] = change.after
        if moves and row is not None:
            count = row.attendee_count if write.attendee_count is None else write.attendee_count
            row = replace(row, attendee_count=count, presence_version=row.presence_version + 1)
            self.rooms[row.room_id] = replace(row, meeting=None) if write.end_meeting else row
        if write.meeting_ended:
            self.meetings[write.meeting_id] = replace(self.meetings[write.meeting_id], ended=True)
        self.presence_writes.append(write)
        return self._commit(write.events)

    async def forget_meeting(self, room_id: str, meeting_id: str) -> None:
        await self._turn("forget_meeting")
        row = self.rooms.get(room_id)
        if row is not None and row.meeting_id == meeting_id:
            self.rooms[room_id] = replace(row, meeting=None)

    # --- find-or-create of the meeting -------------------------------------------

    async def take_lease(
        self, room_id: str, owner: str, now: int, until: int, stale_meeting_id: str | None
    ) -> bool:
        await self._turn("take_lease")
        row = self.rooms.get(room_id)
        if row is None or row.status != ACTIVE:
            return False
        if row.meeting_id != stale_meeting_id:  # absent (None), or exactly the stale one
            return False
        if row.lease_owner is not None and not row.lease_until < now:
            return False  # a live lease
        self.rooms[room_id] = replace(row, lease_owner=owner, lease_until=until)
        return True

    async def release_lease(self, room_id: str, owner: str) -> None:
        await self._turn("release_lease")
        row = self.rooms.get(room_id)
        if row is not None and row.lease_owner == owner:
            self.rooms[room_id] = replace(row, lease_owner=None, lease_until=0)

    async def save_meeting(
        self,
        room_id: str,
        owner: str,
        meeting: Meeting,
        generation: int,
        events: Sequence[Envelope],
    ) -> bool:
        await self._turn("save_meeting")
        row = self.rooms.get(room_id)
        # lease_owner = :owner AND status = active (a lapsed lease still owned passes)
        if row is None or row.lease_owner != owner or row.status != ACTIVE:
            return False
        self.rooms[room_id] = replace(
            row,
            meeting=dict(meeting),
            meeting_generation=generation,
            lease_owner=None,
            lease_until=0,
            attendee_count=0,
            presence_version=row.presence_version + 1,
        )
        self.meetings[str(meeting["MeetingId"])] = MeetingRef(str(meeting["MeetingId"]), room_id)
        return self._commit(events)

    # --- attendees -------------------------------------------------------------

    async def save_attendees(self, writes: Sequence[AttendeeWrite]) -> set[str]:
        """Each row only if it is still the one the caller read (the adapter's
        transactions fall back row by row, so the outcome is per row)."""
        await self._turn("save_attendees")
        self.attendee_batches.append(len(writes))
        raced: set[str] = set()
        for write in writes:
            record = write.record
            key = (record.room_id, record.user_id)
            current = self.attendee_rows.get(key)
            if (write.replaces is None and current is not None) or (
                write.replaces is not None
                and (current is None or current.attendee_id != write.replaces)
            ):
                raced.add(record.user_id)
                continue
            self.attendee_rows[key] = record
            self.attendee_expiry[key] = write.expires_at
            self.presence_rows[(record.meeting_id, record.attendee_id)] = PresenceRecord(
                record.meeting_id, record.attendee_id, record.room_id, record.user_id
            )
            self._commit(write.events)
        return raced

    async def remove_attendee(
        self, room_id: str, user_id: str, attendee_id: str, events: Sequence[Envelope]
    ) -> bool:
        await self._turn("remove_attendee")
        key = (room_id, user_id)
        current = self.attendee_rows.get(key)
        if current is None or current.attendee_id != attendee_id:
            return False
        del self.attendee_rows[key]
        self.attendee_expiry.pop(key, None)
        return self._commit(events)

    # --- for tests ---------------------------------------------------------------

    def types(self) -> list[str]:
        return [e.type for e in self.published]

    def of_type(self, event_type: str) -> list[Envelope]:
        return [e for e in self.published if e.type == event_type]


def chime_event(
    event_type: str,
    meeting_id: str,
    attendee_id: str | None = None,
    *,
    at_ms: int,
    event_id: str | None = None,
) -> str:
    """An SQS message body as EventBridge delivers a Chime meeting event."""
    detail: dict[str, object] = {
        "version": "0",
        "eventType": event_type,
        "timestamp": at_ms,
        "meetingId": meeting_id,
        "externalMeetingId": "r1",
        "mediaRegion": "us-east-1",
    }
    if attendee_id is not None:
        detail.update(attendeeId=attendee_id, externalUserId="someone")
    return json.dumps(
        {
            "version": "0",
            "id": event_id or str(uuid.uuid4()),
            "detail-type": "Chime Meeting State Change",
            "source": "aws.chime",
            "account": "123456789012",
            "time": "2026-12-03T09:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


@dataclass
class FakeQueue:
    """A `MeetingEventQueue`: what the test puts in comes out of `receive`, in
    batches of 10; `deleted` and `retried` record what the use case did."""

    waiting: list[Delivery] = field(default_factory=list)
    deleted: list[Delivery] = field(default_factory=list)
    retried: list[Delivery] = field(default_factory=list)
    fail_receives: int = 0

    def put(self, *bodies: str) -> list[Delivery]:
        new = [Delivery(str(uuid.uuid4()), body, str(uuid.uuid4()), 1) for body in bodies]
        self.waiting.extend(new)
        return new

    async def receive(self) -> list[Delivery]:
        await asyncio.sleep(0)
        if self.fail_receives:
            self.fail_receives -= 1
            raise ConnectionError("SQS is unreachable")
        batch, self.waiting = self.waiting[:10], self.waiting[10:]
        return batch

    async def delete(self, deliveries: Sequence[Delivery]) -> None:
        self.deleted.extend(deliveries)

    async def retry_soon(self, delivery: Delivery) -> None:
        self.retried.append(delivery)
