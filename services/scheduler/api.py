"""`/schedule`: HTTP <-> the schedule's use cases, for admins only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Depends, Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    model_validator,
)

from shared.auth import ADMIN, Principal, require_groups
from shared.clock import utc_iso
from shared.openapi import errors
from shared.service import provided

from .domain import (
    DURATION_MAX,
    DURATION_MIN,
    EPOCH_MAX,
    MEDIA_REGIONS,
    TITLE_MAX,
    TOPIC_MAX,
    Phase,
    Room,
    RoomChanges,
    RoomDraft,
)
from .schedule import Schedule

SERVICE = "scheduler"


def _errors(codes: Mapping[int, list[str]]) -> dict[int | str, dict[str, Any]]:
    """The codes a route answers besides the edge's (docs/http.md); 403: not an admin."""
    return errors({403: ["forbidden"], **codes})


_START = ["start_in_past", "start_too_far"]


router = APIRouter(prefix="/schedule", tags=["schedule"])

Admin = Annotated[Principal, Depends(require_groups(ADMIN))]


def _printable(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("control characters and lone surrogates are not allowed")
    return value


def _title(value: str) -> str:
    value = " ".join(_printable(value).split())
    if not 1 <= len(value) <= TITLE_MAX:
        raise ValueError(f"the title must have 1 to {TITLE_MAX} visible characters")
    return value


def _region(value: str) -> str:
    if value not in MEDIA_REGIONS:
        raise ValueError(f"not a Chime media region: {value[:40]!r}")
    return value


Title = Annotated[str, Field(max_length=TITLE_MAX * 4), AfterValidator(_title)]
Topic = Annotated[str, Field(max_length=TOPIC_MAX), AfterValidator(_printable)]
MediaRegion = Annotated[
    str,
    Field(max_length=32, examples=["eu-central-1"], description="A Chime media region."),
    AfterValidator(_region),
]
StartAt = Annotated[StrictInt, Field(ge=0, le=EPOCH_MAX, description="Start, epoch seconds (UTC).")]
StartTime = Annotated[
    AwareDatetime, Field(description="Start, ISO-8601 with a zone, e.g. 2026-11-21T09:00:00Z.")
]
Duration = Annotated[StrictInt, Field(ge=DURATION_MIN, le=DURATION_MAX)]


def _epoch(start_at: int | None, start_time: datetime | None) -> int | None:
    if start_time is not None:
        return int(start_time.timestamp())
    return start_at


class ScheduleRoom(BaseModel):
    """`start_at` or `start_time`, exactly one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Quarterly review",
                    "start_time": "2030-03-01T09:00:00Z",
                    "duration_minutes": 45,
                    "topic": "Numbers of the quarter, then questions",
                    "media_region": "eu-central-1",
                }
            ]
        },
    )

    title: Title
    start_at: StartAt | None = None
    start_time: StartTime | None = None
    duration_minutes: Duration
    topic: Topic
    media_region: MediaRegion

    @model_validator(mode="after")
    def _one_start(self) -> Self:
        if (self.start_at is None) == (self.start_time is None):
            raise ValueError("give exactly one of start_at (epoch seconds) and start_time")
        return self

    def draft(self) -> RoomDraft:
        start = _epoch(self.start_at, self.start_time)
        assert start is not None
        return RoomDraft(
            title=self.title,
            start_at=start,
            duration_minutes=self.duration_minutes,
            topic=self.topic,
            media_region=self.media_region,
        )


class ChangeRoom(BaseModel):
    """Only the fields given change; a room can change only before its start."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"title": "Quarterly review (moved)", "start_at": 1898150400}]
        },
    )

    title: Title | None = None
    start_at: StartAt | None = None
    start_time: StartTime | None = None
    duration_minutes: Duration | None = None
    topic: Topic | None = None
    media_region: MediaRegion | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.start_at is not None and self.start_time is not None:
            raise ValueError("give at most one of start_at and start_time")
        if not self.model_fields_set or all(
            getattr(self, name) is None for name in type(self).model_fields
        ):
            raise ValueError("give at least one field to change")
        return self

    def changes(self) -> RoomChanges:
        return RoomChanges(
            title=self.title,
            start_at=_epoch(self.start_at, self.start_time),
            duration_minutes=self.duration_minutes,
            topic=self.topic,
            media_region=self.media_region,
        )


class ScheduledRoomOut(BaseModel):
    """A room as the schedule has it (admins)."""

    room_id: str
    title: str
    topic: str
    status: Literal["scheduled", "active", "ended", "cancelled"]
    start_at: int
    end_at: int
    start_time: str
    end_time: str
    duration_minutes: int
    media_region: str
    scheduled_by: str
    revision: int
    created_at: int
    updated_at: int
    cancelled_by: str | None = None
    ended_at: int | None = None

    @classmethod
    def of(cls, room: Room) -> ScheduledRoomOut:
        values: dict[str, Any] = {
            "room_id": room.room_id,
            "title": room.title,
            "topic": room.topic,
            "status": room.phase.value,
            "start_at": room.start_at,
            "end_at": room.end_at,
            "start_time": utc_iso(room.start_at),
            "end_time": utc_iso(room.end_at),
            "duration_minutes": room.duration_minutes,
            "media_region": room.media_region,
            "scheduled_by": room.scheduled_by,
            "revision": room.revision,
            "created_at": room.created_at,
            "updated_at": room.updated_at,
            "cancelled_by": room.cancelled_by,
            "ended_at": room.ended_at,
        }
        return cls(**values)


class ScheduledRoomPage(BaseModel):
    items: list[ScheduledRoomOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


ScheduleDep = Annotated[Schedule, Depends(provided(Schedule))]
RoomId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post(
    "",
    status_code=201,
    summary="Schedule a room",
    responses=_errors({409: ["title_taken"], 422: _START}),
)
async def schedule_room(
    body: ScheduleRoom, admin: Admin, schedule: ScheduleDep
) -> ScheduledRoomOut:
    return ScheduledRoomOut.of(await schedule.schedule(body.draft(), by=admin.user_id))


@router.get(
    "",
    summary="Rooms by status, a page at a time",
    responses=_errors({400: ["invalid_cursor"]}),
)
async def list_rooms(
    *,
    admin: Admin,
    schedule: ScheduleDep,
    status: Literal["scheduled", "active", "ended", "cancelled"] = "scheduled",
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
) -> ScheduledRoomPage:
    page = await schedule.page(
        Phase(status), limit=limit or schedule.page_size, cursor=cursor or None
    )
    return ScheduledRoomPage(
        items=[ScheduledRoomOut.of(r) for r in page.rooms], next_cursor=page.cursor
    )


@router.get("/{room_id}", summary="One room", responses=_errors({404: ["room_not_found"]}))
async def get_room(room_id: RoomId, admin: Admin, schedule: ScheduleDep) -> ScheduledRoomOut:
    return ScheduledRoomOut.of(await schedule.get(room_id))


@router.patch(
    "/{room_id}",
    summary="Change a room before its start",
    responses=_errors(
        {
            404: ["room_not_found"],
            409: [
                "title_taken",
                "room_started",
                "room_cancelled",
                "room_ended",
                "concurrent_change",
            ],
            422: _START,
        }
    ),
)
async def change_room(
    room_id: RoomId, body: ChangeRoom, admin: Admin, schedule: ScheduleDep
) -> ScheduledRoomOut:
    return ScheduledRoomOut.of(await schedule.change(room_id, body.changes()))


@router.delete(
    "/{room_id}",
    summary="Cancel a room (409 room_cancelled the second time)",
    responses=_errors(
        {
            404: ["room_not_found"],
            409: ["room_started", "room_cancelled", "room_ended", "concurrent_change"],
        }
    ),
)
async def cancel_room(room_id: RoomId, admin: Admin, schedule: ScheduleDep) -> ScheduledRoomOut:
    return ScheduledRoomOut.of(await schedule.cancel(room_id, by=admin.user_id))
