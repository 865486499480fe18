"""HTTP: `/rooms` — the landing page, joining, leaving, attendees.

Any signed-in user may list and join. Errors are the typed domain errors,
mapped once by the app factory to DESIGN.md's JSON shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.rooms.domain import RoomNotFound
from services.rooms.joins import Joins
from shared.auth import CurrentUser
from shared.service import service_state

SERVICE = "rooms"
router = APIRouter(prefix="/rooms", tags=["rooms"])

RoomId = Annotated[str, Path(min_length=1, max_length=128, description="The scheduler's id.")]


class RoomOut(BaseModel):
    room_id: str
    title: str
    topic: str
    media_region: str
    start_at: int = Field(description="Epoch seconds, UTC.")
    end_at: int = Field(description="Epoch seconds, UTC.")
    status: str = Field(description="scheduled, active, ended or cancelled.")
    attendee_count: int


class RoomList(BaseModel):
    rooms: list[RoomOut]


class JoinOut(BaseModel):
    """Chime's CreateMeeting and CreateAttendee objects, unchanged, for the Chime JS SDK."""

    model_config = ConfigDict(extra="forbid")
    Meeting: dict[str, Any]
    Attendee: dict[str, Any]


class AttendeeOut(BaseModel):
    user_id: str
    attendee_id: str
    meeting_id: str
    joined_at: int


class AttendeeList(BaseModel):
    attendees: list[AttendeeOut]


def _joins(request: Request) -> Joins:
    joins: Joins = service_state(request, SERVICE)
    return joins


@router.get("", summary="Active rooms (the landing page)")
async def list_rooms(request: Request, _: CurrentUser) -> RoomList:
    joins = _joins(request)
    rooms = await joins.tables.listed_rooms(joins.clock())
    return RoomList(rooms=[RoomOut(**r.view()) for r in rooms])


@router.get("/{room_id}", summary="One room", responses={404: {"description": "Unknown room"}})
async def get_room(room_id: RoomId, request: Request, _: CurrentUser) -> RoomOut:
    room = await _joins(request).tables.room(room_id)
    if room is None:
        raise RoomNotFound(f"no room {room_id}")
    return RoomOut(**room.view())


@router.post(
    "/{room_id}/join",
    summary="Join a room: its Chime meeting and your attendee",
    responses={
        404: {"description": "Unknown room"},
        409: {"description": "room_not_active, room_full"},
        503: {"description": "Chime is throttling or failing; retry after Retry-After"},
    },
)
async def join_room(room_id: RoomId, request: Request, user: CurrentUser) -> JoinOut:
    return JoinOut(**await _joins(request).join(room_id, user.user_id))


@router.post(
    "/{room_id}/leave",
    status_code=204,
    summary="Leave a room (idempotent)",
    responses={404: {"description": "Unknown room"}},
)
async def leave_room(room_id: RoomId, request: Request, user: CurrentUser) -> Response:
    await _joins(request).leave(room_id, user.user_id)
    return Response(status_code=204)


@router.get("/{room_id}/attendees", summary="Who has joined the room and not left")
async def list_attendees(room_id: RoomId, request: Request, _: CurrentUser) -> AttendeeList:
    joins = _joins(request)
    records = await joins.tables.room_attendees(room_id)
    if not records and await joins.tables.room(room_id) is None:
        raise RoomNotFound(f"no room {room_id}")
    return AttendeeList(attendees=[AttendeeOut(**r.view()) for r in records])
