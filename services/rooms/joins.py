"""Joining and leaving rooms: find-or-create of the room's Chime meeting.

The room row is the only record of a room's meeting (the Chime SDK has no
ListMeetings). A warm join costs one Chime call (CreateAttendee, which hands
a user who joins again their existing attendee). The first join of a room,
or the first after Chime ended its meeting, takes a conditional lease on the
row; only the holder creates the meeting, with a ClientRequestToken derived
from the room and the meeting's generation, so retries and a holder's
successor get the same meeting. Everyone else polls the row, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError
from prometheus_client import Counter, Histogram

from services.rooms.adapters.dynamo import RoomTables, is_transaction_conflict, retry_conflicts
from services.rooms.domain import (
    AttendeeRecord,
    MeetingUnavailable,
    Room,
    RoomFull,
    RoomNotActive,
    RoomNotFound,
    external_meeting_id,
    external_user_id,
    meeting_request_token,
)
from services.rooms.ports import Attendee, AttendeeRefused, Meeting, MeetingGateway, MeetingGone
from shared.dynamo import ConditionFailed, TransactItem
from shared.errors import BelfryError
from shared.events import AttendeeJoined, AttendeeLeft, Envelope, EventData, MeetingStarted
from shared.logging import get_logger
from shared.store import Store

log = get_logger("belfry.rooms")

PRODUCER = "rooms"
JOINS = Counter(
    "belfry_rooms_joins_total", "Joins by outcome (`ok` or the error code).", ["outcome"]
)
MEETINGS_CREATED = Counter(
    "belfry_rooms_meetings_created_total", "Chime meetings created, by reason.", ["reason"]
)
MEETING_WAIT_SECONDS = Histogram(
    "belfry_rooms_meeting_wait_seconds",
    "Time a join waited for another join to create the room's meeting.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def event(data: EventData) -> Envelope:
    return Envelope.new(data, producer=PRODUCER)


@dataclass(frozen=True)
class JoinPolicy:
    meeting_wait_seconds: float = 10.0
    lease_seconds: int = 20
    retention_seconds: int = 7 * 86400


class Joins:
    def __init__(
        self,
        tables: RoomTables,
        store: Store,
        chime: MeetingGateway,
        policy: JoinPolicy = JoinPolicy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tables = tables
        self.store = store
        self.chime = chime
        self.policy = policy
        self.clock = clock

    async def _commit(self, items: list[TransactItem], events: list[Envelope]) -> None:
        """State and its events in one transaction, retried while another
        transaction holds the room row; then a 503, not a 500."""
        try:
            await retry_conflicts(lambda: self.store.commit(items, events=events))
        except ClientError as exc:
            if not is_transaction_conflict(exc):
                raise
            raise MeetingUnavailable("the room is busy, try again", code="room_busy") from exc

    # --- join ----------------------------------------------------------------

    async def join(self, room_id: str, user_id: str) -> dict[str, Any]:
        """`{"Meeting": …, "Attendee": …}` as Chime returns them."""
        try:
            result = await self._join(room_id, user_id)
        except BelfryError as exc:
            JOINS.labels(exc.error_code).inc()
            raise
        except Exception:
            JOINS.labels("error").inc()
            raise
        JOINS.labels("ok").inc()
        return result

    async def _join(self, room_id: str, user_id: str) -> dict[str, Any]:
        room, record = await self.tables.room_and_attendee(room_id, user_id)
        if room is None:
            raise RoomNotFound(f"no room {room_id}")
        room.ensure_joinable(self.clock())
        stale: str | None = None
        for attempt in range(2):
            room = await self.find_or_create_meeting(room, stale=stale)
            meeting = room.meeting
            assert meeting is not None
            try:
                attendee = await self._create_attendee(room, user_id)
            except MeetingGone:
                # Chime ended the meeting (idle, or its 24 h): re-create it, once.
                log.info("meeting.gone", room_id=room_id, meeting_id=room.meeting_id)
                if attempt:
                    raise MeetingUnavailable(
                        "the room's meeting could not be started, try again",
                        code="meeting_service_unavailable",
                    ) from None
                stale = room.meeting_id
                continue
            await self._record_attendee(room, meeting, user_id, attendee, record)
            return {"Meeting": meeting, "Attendee": attendee}
        raise AssertionError("unreachable")

    async def _create_attendee(self, room: Room, user_id: str) -> Attendee:
        assert room.meeting_id is not None
        external = external_user_id(user_id)
        # The batch-shaped gateway call is the one place joins reach Chime, so
        # coalescing into BatchCreateAttendee can be added behind it.
        result = (await self.chime.create_attendees(room.meeting_id, [external]))[external]
        if isinstance(result, AttendeeRefused):
            raise RoomFull(f"room {room.room_id} cannot take more attendees")
        return result

    async def find_or_create_meeting(self, room: Room, *, stale: str | None = None) -> Room:
        """The room with a live meeting (as far as the row knows): the cached one,
        one this join creates under the lease, or one another join creates
        while this one waits (bounded)."""
        started = time.monotonic()
        deadline = started + self.policy.meeting_wait_seconds
        owner = uuid.uuid4().hex
        delay = 0.02
        waited = False
        while True:
            if room.meeting is not None and room.meeting_id != stale:
                if waited:
                    MEETING_WAIT_SECONDS.observe(time.monotonic() - started)
                return room
            now = self.clock()
            room.ensure_joinable(now)
            if not room.lease_is_live(int(now)):
                wanted = room.meeting_id if room.meeting is not None else None
                if await self.tables.take_lease(
                    room.room_id,
                    owner,
                    int(now),
                    int(now) + self.policy.lease_seconds,
                    wanted,
                ):
                    return await self._create_meeting(room, owner, replacing=wanted)
            if time.monotonic() > deadline:
                raise MeetingUnavailable(
                    "the room's meeting is still being started, try again",
                    code="meeting_starting",
                )
            await asyncio.sleep(delay * (0.5 + random.random()))
            waited = True
            delay = min(delay * 2, 0.25)
            fresh = await self.tables.room(room.room_id)
            if fresh is None:
                raise RoomNotFound(f"no room {room.room_id}")
            room = fresh

    async def _create_meeting(self, room: Room, owner: str, *, replacing: str | None) -> Room:
        generation = room.meeting_generation + 1
        try:
            meeting = await self.chime.create_meeting(
                request_token=meeting_request_token(room.room_id, generation),
                external_meeting_id=external_meeting_id(room.room_id),
                media_region=room.media_region,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.tables.release_lease(room.room_id, owner))
            raise
        started = MeetingStarted(
            room_id=room.room_id, meeting_id=meeting["MeetingId"], media_region=room.media_region
        )
        try:
            await self._commit(
                [self.tables.meeting_created(room.room_id, owner, meeting, generation)],
                [event(started)],
            )
        except ConditionFailed:
            return await self._lost_lease(room, meeting)
        MEETINGS_CREATED.labels("replaced" if replacing else "first_join").inc()
        log.info(
            "meeting.created",
            room_id=room.room_id,
            meeting_id=meeting["MeetingId"],
            generation=generation,
            replacing=replacing,
        )
        return replace(
            room, meeting=meeting, meeting_generation=generation, lease_owner=None, lease_until=0
        )

    async def _lost_lease(self, room: Room, meeting: Meeting) -> Room:
        """The lease lapsed while Chime answered, or the room ended meanwhile."""
        fresh = await self.tables.room(room.room_id)
        if fresh is not None and fresh.meeting_id == meeting["MeetingId"]:
            return fresh  # the successor sent the same token and got this meeting
        if fresh is None or not fresh.is_joinable(self.clock()):
            await self.chime.delete_meeting(meeting["MeetingId"])
            raise RoomNotActive(f"room {room.room_id} is not active")
        if fresh.meeting is not None:
            await self.chime.delete_meeting(meeting["MeetingId"])
            return fresh
        raise MeetingUnavailable(
            "the room's meeting is still being started, try again", code="meeting_starting"
        )

    async def _record_attendee(
        self,
        room: Room,
        meeting: Meeting,
        user_id: str,
        attendee: Attendee,
        previous: AttendeeRecord | None,
    ) -> None:
        if previous is not None and previous.attendee_id == attendee["AttendeeId"]:
            return  # the same attendee again: nothing new to record or announce
        record = AttendeeRecord(
            room_id=room.room_id,
            user_id=user_id,
            meeting_id=str(meeting["MeetingId"]),
            attendee=attendee,
            joined_at=int(self.clock()),
        )
        events: list[Envelope] = []
        if previous is not None:  # their attendee went with the meeting Chime ended
            events.append(
                event(
                    AttendeeLeft(
                        room_id=room.room_id,
                        meeting_id=previous.meeting_id,
                        attendee_id=previous.attendee_id,
                        user_id=user_id,
                    )
                )
            )
        events.append(
            event(
                AttendeeJoined(
                    room_id=room.room_id,
                    meeting_id=record.meeting_id,
                    attendee_id=record.attendee_id,
                    user_id=user_id,
                )
            )
        )
        expires_at = room.end_at + self.policy.retention_seconds
        replaces = previous.attendee_id if previous is not None else None
        try:
            await self._commit([self.tables.attendee_put(record, expires_at, replaces)], events)
        except ConditionFailed:
            # A concurrent join of the same user recorded first; Chime gave both
            # the same attendee of this meeting, so the answer stands.
            log.info("attendee.concurrent_join", room_id=room.room_id)
        else:
            log.info("attendee.joined", room_id=room.room_id, attendee_id=record.attendee_id)

    # --- leave ---------------------------------------------------------------

    async def leave(self, room_id: str, user_id: str) -> None:
        """Idempotent: leaving a room one is not in is fine (unknown rooms are 404)."""
        record = await self.tables.attendee(room_id, user_id)
        if record is None:
            if await self.tables.room(room_id) is None:
                raise RoomNotFound(f"no room {room_id}")
            return
        await self.chime.delete_attendee(record.meeting_id, record.attendee_id)
        left = AttendeeLeft(
            room_id=room_id,
            meeting_id=record.meeting_id,
            attendee_id=record.attendee_id,
            user_id=user_id,
        )
        try:
            await self._commit(
                [self.tables.attendee_delete(room_id, user_id, record.attendee_id)], [event(left)]
            )
        except ConditionFailed:
            log.info("attendee.concurrent_leave", room_id=room_id)
        else:
            log.info("attendee.left", room_id=room_id, attendee_id=record.attendee_id)
