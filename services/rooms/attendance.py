"""Who is in a room: joining (the room's meeting and your own attendee),
leaving, and the list of attendees.

Joins of one room that arrive together (within a short window, or while the
room's previous batch is out) are handled as one batch (`shared.batching`):
the room and every user's attendee row in one read, the room's meeting found
or created once (`meetings.Meetings`), every user's Chime attendee in one
BatchCreateAttendee (the one place joins reach Chime), then the new rows and
their events in as few transactions as fit. Each user gets their own attendee
or their own error. A user who joins twice gets their attendee back; a
meeting Chime has ended is re-created, once. Every Chime request of a join
waits for the account-wide budget no longer than the join's deadline.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.batching import Coalescer
from shared.budget import within
from shared.clock import Clock
from shared.errors import BelfryError
from shared.events import AttendeeJoined, AttendeeLeft, Envelope
from shared.logging import get_logger
from shared.metrics import Counter, Histogram

from .domain import (
    AttendeeRecord,
    MeetingUnavailable,
    Room,
    RoomFull,
    RoomNotActive,
    RoomNotFound,
    announce,
    external_user_id,
)
from .meetings import Meetings
from .ports import (
    Attendee,
    AttendeeRefused,
    AttendeeWrite,
    Meeting,
    MeetingGateway,
    MeetingGone,
    RoomStore,
)

log = get_logger("belfry.rooms")

JOINS = Counter(
    "belfry_rooms_joins_total", "Joins by outcome (`ok` or the error code).", ["outcome"]
)
BATCH_SIZE = Histogram(
    "belfry_rooms_join_batch_size",
    "Joins of one room handled together (one BatchCreateAttendee).",
    buckets=(1, 2, 5, 10, 20, 50, 100),
)
BATCH_LIMIT = 100  # BatchCreateAttendee's limit


class Attendance:
    def __init__(
        self,
        store: RoomStore,
        chime: MeetingGateway,
        meetings: Meetings,
        *,
        clock: Clock = time.time,
        retention_seconds: int = 7 * 86400,
        window_seconds: float = 0.02,
        max_wait_seconds: float = 0.25,
        max_batch: int = BATCH_LIMIT,
        deadline_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.chime = chime
        self.meetings = meetings
        self.clock = clock
        self.retention_seconds = retention_seconds
        self.deadline_seconds = deadline_seconds
        # Two stages, each batched per room: Chime (reads, the meeting, one
        # BatchCreateAttendee), then the rows; a room's next Chime batch need
        # not wait for the previous one's writes.
        self._joins: Coalescer[str, str, tuple[dict[str, Any], _Write | None]] = Coalescer(
            self._join_batch,
            window=window_seconds,
            max_wait=max_wait_seconds,
            max_batch=min(max_batch, BATCH_LIMIT),
            on_batch=BATCH_SIZE.observe,
        )
        self._writes: Coalescer[str, _Write, None] = Coalescer(
            self._write_batch, window=0, max_batch=BATCH_LIMIT
        )

    async def close(self) -> None:
        await self._joins.close()
        await self._writes.close()

    # --- join ----------------------------------------------------------------

    async def join(self, room_id: str, user_id: str) -> dict[str, Any]:
        """`{"Meeting": …, "Attendee": …}` as Chime returns them. Joins of one
        room that arrive together are handled as one batch."""
        try:
            result, write = await self._joins.submit(room_id, user_id)
            if write is not None:
                await self._writes.submit(room_id, write)
        except BelfryError as exc:
            JOINS.labels(exc.error_code).inc()
            raise
        except Exception:
            JOINS.labels("error").inc()
            raise
        JOINS.labels("ok").inc()
        return result

    async def _join_batch(
        self, room_id: str, users: list[str]
    ) -> dict[str, tuple[dict[str, Any], _Write | None] | BaseException]:
        """One read of the room and every user's row, one find-or-create of the
        meeting, one BatchCreateAttendee; every user gets their own answer (and
        the row to write) or error."""
        with within(self.deadline_seconds):
            room, previous = await self.store.room_and_attendees(room_id, users)
            if room is None:
                return {u: RoomNotFound(f"no room {room_id}") for u in users}
            if not room.is_joinable(self.clock()):
                return {u: RoomNotActive(f"room {room_id} is not active") for u in users}
            room, created = await self._create_attendees(room, users)
        meeting = room.meeting
        assert meeting is not None
        answers: dict[str, tuple[dict[str, Any], _Write | None] | BaseException] = {}
        for user in users:
            got = created.get(external_user_id(user))
            if got is None or isinstance(got, AttendeeRefused):
                answers[user] = _refused(room, got)
                continue
            write = self._write(room, meeting, user, got, previous.get(user))
            answers[user] = (
                {"Meeting": meeting, "Attendee": got},
                None if write is None else _Write(write),
            )
        return answers

    async def _write_batch(self, room_id: str, writes: list[_Write]) -> dict[_Write, None]:
        raced = await self.store.save_attendees([w.write for w in writes])
        # A concurrent join of the same user recorded first; Chime gave both the
        # same attendee of this meeting, so the answer stands.
        log.info("attendees.joined", room_id=room_id, joined=len(writes), raced=len(raced))
        return dict.fromkeys(writes)

    async def _create_attendees(
        self, room: Room, users: list[str]
    ) -> tuple[Room, Mapping[str, Attendee | AttendeeRefused]]:
        stale: str | None = None
        for attempt in range(2):
            room = await self.meetings.find_or_create(room, stale=stale)
            assert room.meeting_id is not None
            try:
                externals = [external_user_id(u) for u in users]
                return room, await self.chime.create_attendees(room.meeting_id, externals)
            except MeetingGone:
                # Chime ended the meeting (idle, or its 24 h): re-create it, once.
                log.info("meeting.gone", room_id=room.room_id, meeting_id=room.meeting_id)
                if attempt:
                    break
                stale = room.meeting_id
        raise MeetingUnavailable(
            "the room's meeting could not be started, try again",
            code="meeting_service_unavailable",
        )

    def _write(
        self,
        room: Room,
        meeting: Meeting,
        user_id: str,
        attendee: Attendee,
        previous: AttendeeRecord | None,
    ) -> AttendeeWrite | None:
        if previous is not None and previous.attendee_id == attendee["AttendeeId"]:
            return None  # the same attendee again: nothing new to record or announce
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
        replaces = previous.attendee_id if previous is not None else None
        return AttendeeWrite(record, room.end_at + self.retention_seconds, replaces, events)

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
        """Who has joined and not left, each with whether Chime says they are
        connected to the room's current meeting."""
        room = await self.store.room(room_id)
        if room is None:
            raise RoomNotFound(f"no room {room_id}")
        records = await self.store.attendees(room_id)
        if room.meeting_id is None:
            return records
        presence = await self.store.presence(room.meeting_id)
        connected = {p.attendee_id for p in presence if p.connected}
        return [replace(r, connected=r.attendee_id in connected) for r in records]


@dataclass(eq=False)
class _Write:
    """A row to write, as a batch item (by identity: rows hold dicts)."""

    write: AttendeeWrite


def _refused(room: Room, refusal: AttendeeRefused | None) -> BelfryError:
    if refusal is not None and refusal.code.startswith("LimitExceeded"):
        return RoomFull(f"room {room.room_id} cannot take more attendees")
    log.warning("attendee.refused", room_id=room.room_id, code=getattr(refusal, "code", None))
    return MeetingUnavailable(
        "the meeting service did not take this attendee, try again",
        code="meeting_service_unavailable",
    )


def left(record: AttendeeRecord) -> AttendeeLeft:
    return AttendeeLeft(
        room_id=record.room_id,
        meeting_id=record.meeting_id,
        attendee_id=record.attendee_id,
        user_id=record.user_id,
    )
