"""chat's HTTP routes for editing and deleting messages (docs/chat.md,
"Editing and deleting"): translate HTTP <-> `Edits`, nothing else."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from shared.openapi import errors
from shared.service import provided

from .api import CHIME_DOWN, NO_ROLE, Identifier, Me, MessageOut, PathId
from .edits import Edits

router = APIRouter(prefix="/chat", tags=["chat"])
EditsDep = Annotated[Edits, Depends(provided(Edits))]


class MessageEdit(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"content": "Hello @mia, the corrected invoice", "mentions": ["mia"]}]
        },
    )
    content: str = Field(max_length=20_000)
    mentions: list[Identifier] = Field(
        default_factory=list,
        max_length=200,
        description="The message's mentions after the edit; people it adds are mentioned.",
    )


@router.patch(
    "/channels/{channel_id}/messages/{message_id}",
    response_model=MessageOut,
    summary="Edit a message (its sender, within BELFRY_CHAT_EDIT_WINDOW_SECONDS)",
    responses=errors(
        {
            403: ["not_sender", "not_a_member", NO_ROLE],
            404: ["channel_not_found", "message_not_found"],
            409: ["edit_window_closed", "message_deleted"],
            422: ["empty_content", "content_too_long", "too_many_mentions", "mention_refused"],
            503: [*CHIME_DOWN, "storage_unavailable"],
        }
    ),
)
async def edit_message(
    channel_id: PathId, message_id: PathId, body: MessageEdit, edits: EditsDep, me: Me
) -> dict[str, Any]:
    return await edits.edit(me, channel_id, message_id, body.content, body.mentions)


@router.delete(
    "/channels/{channel_id}/messages/{message_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a message (its sender, or a manager); idempotent",
    responses=errors(
        {
            403: ["not_sender", NO_ROLE],
            404: ["channel_not_found", "message_not_found"],
            409: ["message_changed"],
            503: [*CHIME_DOWN, "storage_unavailable"],
        }
    ),
)
async def delete_message(
    channel_id: PathId, message_id: PathId, edits: EditsDep, me: Me
) -> Response:
    await edits.delete(me, channel_id, message_id)
    return Response(status_code=204)
