"""HTTP: `/rooms` — the landing page, joining, leaving, attendees.

Any signed-in user may list and join. Errors are the typed domain errors,
mapped once by the app factory to DESIGN.md's JSON shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import CurrentUser
from shared.openapi import errors
from shared.service import provided

from .attendance import Attendance
from .listing import Listing

SERVICE = "rooms"
router = APIRouter(prefix="/rooms", tags=["rooms"])

RoomId = Annotated[str, Path(min_length=1, max_length=128, description="The scheduler's id.")]


class ActiveRoomOut(BaseModel):
    """A room as the landing page shows it: any signed-in user."""

    room_id: str
    title: str
    topic: str
    media_region: str
    start_at: int = Field(description="Epoch seconds, UTC.")
    end_at: int = Field(description="Epoch seconds, UTC.")
    status: str = Field(description="scheduled, active, ended or cancelled.")
    attendee_count: int = Field(
        description="Attendees connected to the room's meeting now (Chime's meeting events)."
    )


class RoomList(BaseModel):
    rooms: list[ActiveRoomOut]


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
    connected: bool = Field(
        description="Chime says this attendee's client is connected to the meeting now."
    )


class AttendeeList(BaseModel):
    attendees: list[AttendeeOut]


AttendanceDep = Annotated[Attendance, Depends(provided(Attendance))]
ListingDep = Annotated[Listing, Depends(provided(Listing))]


@router.get("", summary="Active rooms (the landing page)")
async def list_rooms(listing: ListingDep, _: CurrentUser) -> RoomList:
    return RoomList(rooms=[ActiveRoomOut(**r.view()) for r in await listing.active()])


@router.get("/{room_id}", summary="One room", responses=errors({404: ["room_not_found"]}))
async def get_room(room_id: RoomId, listing: ListingDep, _: CurrentUser) -> ActiveRoomOut:
    return ActiveRoomOut(**(await listing.get(room_id)).view())


@router.post(
    "/{room_id}/join",
    summary="Join a room: its Chime meeting and your attendee",
    responses=errors(
        {
            404: ["room_not_found"],
            409: ["room_not_active", "room_full"],
            503: ["meeting_service_unavailable", "chime_busy", "room_busy", "meeting_starting"],
        }
    ),
)
async def join_room(room_id: RoomId, attendance: AttendanceDep, user: CurrentUser) -> JoinOut:
    return JoinOut(**await attendance.join(room_id, user.user_id))


@router.post(
    "/{room_id}/leave",
    status_code=204,
    summary="Leave a room (idempotent)",
    responses=errors({404: ["room_not_found"], 503: ["meeting_service_unavailable", "chime_busy"]}),
)
async def leave_room(room_id: RoomId, attendance: AttendanceDep, user: CurrentUser) -> Response:
    await attendance.leave(room_id, user.user_id)
    return Response(status_code=204)


@router.get(
    "/{room_id}/attendees",
    summary="Who has joined the room and not left, and who of them is connected",
    responses=errors({404: ["room_not_found"]}),
)
async def list_attendees(
    room_id: RoomId, attendance: AttendanceDep, _: CurrentUser
) -> AttendeeList:
    records = await attendance.attendees(room_id)
    return AttendeeList(attendees=[AttendeeOut(**r.view()) for r in records])
