"""A room's Chime meeting: found, created on the first join, re-created after
Chime ended it, deleted when the room ends.

There is no ListMeetings in the Chime SDK, so the room's row caches its
meeting. The first join of an active room, or the first after Chime ended its
meeting, takes a conditional lease on the row; only the holder creates the
meeting, with a ClientRequestToken derived from the room and the meeting's
generation, so retries and a holder's successor get the same meeting.
Everyone else polls the row, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import replace

from shared.clock import Clock
from shared.events import MeetingStarted
from shared.logging import get_logger
from shared.metrics import Counter, Histogram

from .domain import (
    TERMINAL,
    MeetingUnavailable,
    Room,
    RoomNotActive,
    RoomNotFound,
    announce,
    external_meeting_id,
    meeting_request_token,
)
from .ports import Meeting, MeetingGateway, RoomStore

log = get_logger("belfry.rooms")

MEETINGS_CREATED = Counter(
    "belfry_rooms_meetings_created_total", "Chime meetings created, by reason.", ["reason"]
)
MEETING_WAIT_SECONDS = Histogram(
    "belfry_rooms_meeting_wait_seconds",
    "Time a join waited for another join to create the room's meeting.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def starting() -> MeetingUnavailable:
    return MeetingUnavailable(
        "the room's meeting is still being started, try again", code="meeting_starting"
    )


class Meetings:
    def __init__(
        self,
        store: RoomStore,
        chime: MeetingGateway,
        *,
        clock: Clock = time.time,
        wait_seconds: float = 10.0,
        lease_seconds: int = 20,
    ) -> None:
        self.store = store
        self.chime = chime
        self.clock = clock
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds

    async def find_or_create(self, room: Room, *, stale: str | None = None) -> Room:
        """The room with a live meeting (as far as the row knows): the cached one,
        one this join creates under the lease, or one another join creates
        while this one waits (bounded). `stale`: a meeting Chime said is gone."""
        started = time.monotonic()
        deadline = started + self.wait_seconds
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
                if await self.store.take_lease(
                    room.room_id, owner, int(now), int(now) + self.lease_seconds, wanted
                ):
                    return await self._create(room, owner, replacing=wanted)
            if time.monotonic() > deadline:
                raise starting()
            await asyncio.sleep(delay * (0.5 + random.random()))
            waited = True
            delay = min(delay * 2, 0.25)
            fresh = await self.store.room(room.room_id)
            if fresh is None:
                raise RoomNotFound(f"no room {room.room_id}")
            room = fresh

    async def _create(self, room: Room, owner: str, *, replacing: str | None) -> Room:
        generation = room.meeting_generation + 1
        try:
            meeting = await self.chime.create_meeting(
                request_token=meeting_request_token(room.room_id, generation),
                external_meeting_id=external_meeting_id(room.room_id),
                media_region=room.media_region,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_lease(room.room_id, owner))
            raise
        started = MeetingStarted(
            room_id=room.room_id, meeting_id=meeting["MeetingId"], media_region=room.media_region
        )
        if not await self.store.save_meeting(
            room.room_id, owner, meeting, generation, [announce(started)]
        ):
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
        fresh = await self.store.room(room.room_id)
        if fresh is not None and fresh.meeting_id == meeting["MeetingId"]:
            return fresh  # the successor sent the same token and got this meeting
        if fresh is None or not fresh.is_joinable(self.clock()):
            await self.chime.delete_meeting(meeting["MeetingId"])
            raise RoomNotActive(f"room {room.room_id} is not active")
        if fresh.meeting is not None:
            await self.chime.delete_meeting(meeting["MeetingId"])
            return fresh
        raise starting()


async def close_meeting(room_id: str, *, store: RoomStore, chime: MeetingGateway) -> None:
    """Delete the Chime meeting of a room that ended or was cancelled. Runs on
    every delivery of the room's end, so a DeleteMeeting that failed is
    retried even though the state is written (NotFound is fine)."""
    room = await store.room(room_id)
    if room is None or room.status not in TERMINAL or room.meeting_id is None:
        return
    await chime.delete_meeting(room.meeting_id)
    await store.forget_meeting(room_id, room.meeting_id)
    log.info("meeting.deleted", room_id=room_id, meeting_id=room.meeting_id)
