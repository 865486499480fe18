"""Who is in a room: joining (the room's meeting and your own attendee),
leaving, and the list of attendees.

A join is: the room and the user's attendee row in one read, the room's
meeting found or created (`meetings.Meetings`), the user's Chime attendee
(the batch-shaped gateway call is the one place joins reach Chime), then the
attendee row and its events in one transaction. A user who joins twice gets
their attendee back; a meeting Chime has ended is re-created, once.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter

from shared.clock import Clock
from shared.errors import BelfryError
from shared.events import AttendeeJoined, AttendeeLeft, Envelope
from shared.logging import get_logger

from .domain import (
    AttendeeRecord,
    MeetingUnavailable,
    Room,
    RoomFull,
    RoomNotFound,
    announce,
    external_user_id,
)
from .meetings import Meetings
from .ports import Attendee, AttendeeRefused, Meeting, MeetingGateway, MeetingGone, RoomStore

log = get_logger("belfry.rooms")

JOINS = Counter(
    "belfry_rooms_joins_total", "Joins by outcome (`ok` or the error code).", ["outcome"]
)


class Attendance:
    def __init__(
        self,
        store: RoomStore,
        chime: MeetingGateway,
        meetings: Meetings,
        *,
        clock: Clock = time.time,
        retention_seconds: int = 7 * 86400,
    ) -> None:
        self.store = store
        self.chime = chime
        self.meetings = meetings
        self.clock = clock
        self.retention_seconds = retention_seconds

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
        room, record = await self.store.room_and_attendee(room_id, user_id)
        if room is None:
            raise RoomNotFound(f"no room {room_id}")
        room.ensure_joinable(self.clock())
        stale: str | None = None
        for attempt in range(2):
            room = await self.meetings.find_or_create(room, stale=stale)
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
            await self._record(room, meeting, user_id, attendee, record)
            return {"Meeting": meeting, "Attendee": attendee}
        raise AssertionError("unreachable")

    async def _create_attendee(self, room: Room, user_id: str) -> Attendee:
        assert room.meeting_id is not None
        external = external_user_id(user_id)
        result = (await self.chime.create_attendees(room.meeting_id, [external]))[external]
        if isinstance(result, AttendeeRefused):
            raise RoomFull(f"room {room.room_id} cannot take more attendees")
        return result

    async def _record(
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
            events.append(announce(left(previous)))
        events.append(
            announce(
                AttendeeJoined(
                    room_id=room.room_id,
                    meeting_id=record.meeting_id,
                    attendee_id=record.attendee_id,
                    user_id=user_id,
                )
            )
        )
        expires_at = room.end_at + self.retention_seconds
        replaces = previous.attendee_id if previous is not None else None
        if await self.store.save_attendee(record, expires_at, replaces, events):
            log.info("attendee.joined", room_id=room.room_id, attendee_id=record.attendee_id)
        else:
            # A concurrent join of the same user recorded first; Chime gave both
            # the same attendee of this meeting, so the answer stands.
            log.info("attendee.concurrent_join", room_id=room.room_id)

    # --- leave, list -------------------------------------------------------------

    async def leave(self, room_id: str, user_id: str) -> None:
        """Idempotent: leaving a room one is not in is fine (unknown rooms are 404)."""
        record = await self.store.attendee(room_id, user_id)
        if record is None:
            if await self.store.room(room_id) is None:
                raise RoomNotFound(f"no room {room_id}")
            return
        await self.chime.delete_attendee(record.meeting_id, record.attendee_id)
        events = [announce(left(record))]
        if await self.store.remove_attendee(room_id, user_id, record.attendee_id, events):
            log.info("attendee.left", room_id=room_id, attendee_id=record.attendee_id)
        else:
            log.info("attendee.concurrent_leave", room_id=room_id)

    async def attendees(self, room_id: str) -> list[AttendeeRecord]:
        records = await self.store.attendees(room_id)
        if not records and await self.store.room(room_id) is None:
            raise RoomNotFound(f"no room {room_id}")
        return records


def left(record: AttendeeRecord) -> AttendeeLeft:
    return AttendeeLeft(
        room_id=record.room_id,
        meeting_id=record.meeting_id,
        attendee_id=record.attendee_id,
        user_id=record.user_id,
    )
