"""chat's HTTP surface under `/chat`: translate HTTP <-> use cases, nothing else."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from shared.auth import CurrentUser, StaffUser
from shared.edge import bounded_receive
from shared.errors import BadRequest, PayloadTooLarge, Unprocessable
from shared.openapi import errors
from shared.service import provided

from . import leave
from .assignments import Assignments
from .attachments import Attachments
from .channels import Channels
from .domain import Caller, UnsupportedMediaType, normalise_content_type, role_of
from .messages import Messages
from .people import People
from .roles import RoleChanges

router = APIRouter(prefix="/chat", tags=["chat"])

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
PathId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
MULTIPART_OVERHEAD = 64 * 1024


PeopleDep = Annotated[People, Depends(provided(People))]
ChannelsDep = Annotated[Channels, Depends(provided(Channels))]
AssignmentsDep = Annotated[Assignments, Depends(provided(Assignments))]
MessagesDep = Annotated[Messages, Depends(provided(Messages))]
AttachmentsDep = Annotated[Attachments, Depends(provided(Attachments))]
RolesDep = Annotated[RoleChanges, Depends(provided(RoleChanges))]


async def _caller(people: PeopleDep, user: CurrentUser) -> Caller:
    return await people.caller(user.user_id, role_of(user.groups), user.username)


Me = Annotated[Caller, Depends(_caller)]
NO_ROLE = "no_chat_role"  # 403: a token with none of chat's groups (docs/chat.md)
CHIME_DOWN = ["chime_unavailable", "chime_busy"]


class AssignManager(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"manager_id": "mia"}]}
    )
    manager_id: Identifier


class ChannelOut(BaseModel):
    channel_id: str
    channel_arn: str
    kind: str
    name: str
    customer_id: str
    manager_id: str | None = None
    is_member: bool


class AssignmentOut(BaseModel):
    customer_id: str
    manager_id: str
    previous_manager_id: str | None = None
    customer_channel: ChannelOut
    managers_channel: ChannelOut


class PersonOut(BaseModel):
    user_id: str
    username: str
    role: str


class PeopleOut(BaseModel):
    people: list[PersonOut]


class AttachmentOut(BaseModel):
    attachment_id: str
    key: str
    name: str
    size: int
    content_type: str


class UploadForm(BaseModel):
    url: str
    fields: dict[str, str]


class PresignedAttachmentOut(AttachmentOut):
    upload: UploadForm
    expires_in: int


class MessageIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "content": "Hello @mia, the invoice is attached",
                    "mentions": ["mia"],
                    "attachment_ids": ["01JD6Z8Q3X5ZK4V7M2N9P0R1ST"],
                }
            ]
        },
    )
    content: str = Field(max_length=20_000)
    mentions: list[Identifier] = Field(default_factory=list, max_length=200)
    attachment_ids: list[Identifier] = Field(default_factory=list, max_length=200)


class MessageOut(BaseModel):
    message_id: str
    channel_id: str
    chime_message_id: str | None = None
    sender_id: str
    content: str | None = Field(description="None once deleted")
    mentions: list[str]
    attachments: list[AttachmentOut]
    posted_at: str
    edited_at: str | None = None
    deleted: bool = False
    deleted_at: str | None = None
    deleted_by: str | None = None


class MessagePage(BaseModel):
    messages: list[MessageOut]
    next_cursor: str | None = None


class PresignRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "invoice.pdf", "size": 48213, "content_type": "application/pdf"}]
        },
    )
    name: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=0, le=2**53)
    content_type: str = Field(min_length=1, max_length=255)


Cursor = Annotated[str | None, Query(max_length=2048)]


@router.put(
    "/customers/{customer_id}/manager",
    response_model=AssignmentOut,
    summary="Assign a manager to a customer (admin or manager)",
    responses=errors(
        {
            403: ["forbidden", NO_ROLE],
            409: ["assignment_changed"],
            422: ["not_a_manager", "not_a_customer", "invalid_assignment"],
            503: ["directory_unavailable", *CHIME_DOWN],
        }
    ),
)
async def assign_manager(
    customer_id: PathId, body: AssignManager, assignments: AssignmentsDep, _: StaffUser, me: Me
) -> dict[str, Any]:
    return await assignments.assign(me, customer_id, body.manager_id)


@router.get(
    "/people",
    response_model=PeopleOut,
    summary="Whom the caller may mention by username (staff: everyone; customers: managers)",
    responses=errors({403: [NO_ROLE]}),
)
async def list_people(people: PeopleDep, me: Me) -> dict[str, Any]:
    found = await people.directory(me)
    return {
        "people": [
            {"user_id": p.user_id, "username": p.username, "role": p.role}
            for p in found
            if p.username
        ]
    }


@router.post(
    "/channels/{channel_id}/join",
    status_code=204,
    response_class=Response,
    summary="Join a channel (managers)",
    responses=errors({403: ["forbidden", NO_ROLE], 404: ["channel_not_found"], 503: CHIME_DOWN}),
)
async def join_channel(channel_id: PathId, channels: ChannelsDep, me: Me) -> Response:
    await channels.join(me, channel_id)
    return Response(status_code=204)


@router.post(
    "/channels/{channel_id}/leave",
    status_code=204,
    response_class=Response,
    summary="Leave a channel (managers; idempotent)",
    responses=errors(
        {
            403: ["forbidden", NO_ROLE],
            404: ["channel_not_found"],
            409: ["assigned_manager"],
            503: CHIME_DOWN,
        }
    ),
)
async def leave_channel(
    channel_id: PathId, channels: ChannelsDep, roles: RolesDep, me: Me
) -> Response:
    """End the caller's membership (Chime, then the row and `ChannelLeft`
    `manual`); 204 also when they were not a member."""
    await leave.leave_channel(channels, roles, me, channel_id)
    return Response(status_code=204)


@router.get(
    "/channels/{channel_id}/messages",
    response_model=MessagePage,
    summary="Message history, newest first",
    responses=errors({400: ["invalid_cursor"], 403: [NO_ROLE], 404: ["channel_not_found"]}),
)
async def list_messages(
    channel_id: PathId, messages: MessagesDep, me: Me, cursor: Cursor = None
) -> dict[str, Any]:
    return await messages.history(me, channel_id, cursor)


@router.post(
    "/channels/{channel_id}/messages",
    status_code=201,
    response_model=MessageOut,
    summary="Post a message (joins a manager who is not yet a member)",
    responses=errors(
        {
            403: ["not_a_member", NO_ROLE],
            404: ["channel_not_found"],
            409: ["attachment_refused"],
            422: [
                "empty_content",
                "content_too_long",
                "too_many_mentions",
                "too_many_attachments",
                "mention_refused",
                "attachment_refused",
            ],
            503: [*CHIME_DOWN, "storage_unavailable"],
        }
    ),
)
async def post_message(
    channel_id: PathId, body: MessageIn, messages: MessagesDep, me: Me
) -> dict[str, Any]:
    return await messages.post(me, channel_id, body.content, body.mentions, body.attachment_ids)


@router.post(
    "/attachments",
    status_code=201,
    response_model=AttachmentOut | PresignedAttachmentOut,
    summary="Upload an attachment (multipart `file`), or ask for a presigned POST (JSON)",
    responses=errors(
        {
            403: [NO_ROLE],
            413: ["attachment_too_large"],
            415: ["unsupported_media_type", "unsupported_content_type"],
            422: ["file_required", "empty_file"],
            503: ["storage_unavailable"],
        }
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
                "application/json": {"schema": PresignRequest.model_json_schema()},
            },
        }
    },
)
async def create_attachment(
    request: Request, attachments: AttachmentsDep, me: Me
) -> dict[str, Any]:
    media_type = normalise_content_type(request.headers.get("content-type"))
    if media_type == "application/json":
        body = await _presign_request(request)
        return await attachments.upload_form(
            me, body.name, normalise_content_type(body.content_type), body.size
        )
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType(
            "send multipart/form-data with a `file` part, or JSON for a presigned POST",
            code="unsupported_media_type",
        )
    limit = attachments.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"at most {limit} bytes per attachment", code="attachment_too_large")
    bounded = _bounded(request, limit + MULTIPART_OVERHEAD)
    async with bounded.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("a multipart `file` part is required", code="file_required")
        size = upload.size if upload.size is not None else 0
        await upload.seek(0)
        data = await upload.read(limit + 1) if size <= limit else b""
        return await attachments.upload(
            me,
            upload.filename,
            normalise_content_type(upload.content_type),
            max(size, len(data)),
            data,
        )


def _bounded(request: Request, limit: int) -> Request:
    """The request, reading at most `limit` body bytes (`shared.edge.bounded_receive`)."""

    def too_large() -> Exception:
        return PayloadTooLarge(
            "the upload is larger than an attachment may be", code="attachment_too_large"
        )

    return Request(request.scope, bounded_receive(request.receive, limit, too_large))


async def _presign_request(request: Request) -> PresignRequest:
    raw = await request.body()
    try:
        return PresignRequest.model_validate(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Unprocessable(
                f"{where}: {first['msg']}".strip(": "), code="validation_error"
            ) from None
        raise BadRequest("the request body is not valid JSON", code="invalid_json") from None


@router.get(
    "/attachments/{attachment_id}",
    status_code=302,
    response_class=RedirectResponse,
    summary="Redirect to a short-lived download URL",
    responses=errors({403: [NO_ROLE], 404: ["attachment_not_found"], 503: ["storage_unavailable"]}),
)
async def download_attachment(
    attachment_id: PathId, attachments: AttachmentsDep, me: Me
) -> RedirectResponse:
    url = await attachments.download_url(me, attachment_id)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
