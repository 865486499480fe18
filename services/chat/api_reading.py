"""chat's HTTP routes of read state (docs/chat.md, "Unread counts"): the
channel list with unread counts, and read marks. Translate HTTP <->
`Reading`, nothing else."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from shared.openapi import errors
from shared.service import provided

from .api import NO_ROLE, ChannelOut, Cursor, Identifier, Me, PathId
from .reading import Reading

router = APIRouter(prefix="/chat", tags=["chat"])
ReadingDep = Annotated[Reading, Depends(provided(Reading))]


class LastMessageOut(BaseModel):
    message_id: str
    excerpt: str | None = Field(description="None once the message was deleted")
    sender_id: str
    posted_at: str
    deleted: bool = False


class ChannelListed(ChannelOut):
    unread_count: int = Field(description="Messages after the caller's read mark")
    unread_mentions: int = Field(description="Of those, the ones that mention the caller")
    last_message: LastMessageOut | None = None


class ChannelPage(BaseModel):
    channels: list[ChannelListed]
    next_cursor: str | None = None


class ReadMark(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"up_to": "1764950400000-3f2a9c1b7d4e6f80"}]},
    )
    up_to: Identifier  # a message id of this channel (Belfry's, as history shows it)


@router.post(
    "/channels/{channel_id}/read",
    status_code=204,
    response_class=Response,
    summary="Mark the channel read up to a message (monotonic: older marks are ignored)",
    responses=errors({403: [NO_ROLE], 404: ["channel_not_found", "message_not_found"]}),
)
async def mark_channel_read(
    channel_id: PathId, body: ReadMark, reading: ReadingDep, me: Me
) -> Response:
    await reading.mark_read(me, channel_id, body.up_to)
    return Response(status_code=204)


@router.get(
    "/channels",
    response_model=ChannelPage,
    summary="Channels the caller may see, newest activity first, with unread counts",
    responses=errors({400: ["invalid_cursor"], 403: [NO_ROLE]}),
)
async def list_channels(reading: ReadingDep, me: Me, cursor: Cursor = None) -> dict[str, Any]:
    return await reading.list(me, cursor)
