"""`/notifications`: the mention inbox over HTTP and the live feed over a WebSocket."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect, WebSocketState

from shared.auth import CurrentUser, SessionAuth
from shared.clock import utc_iso
from shared.errors import BelfryError, NotFound, ServiceUnavailable
from shared.openapi import errors
from shared.service import provided

from .limits import CLOSE_TOO_MANY, SessionLimit
from .live import CLOSE_TRY_LATER, CLOSE_UNAUTHORIZED, Session
from .state import Notifier

router = APIRouter(prefix="/notifications", tags=["notifications"])


class MentionOut(BaseModel):
    mention_id: str
    message_id: str | None
    channel_id: str | None
    channel_arn: str | None
    mentioned_by: str | None
    excerpt: str
    created_at: str | None
    read: bool
    read_at: str | None


class MentionPage(BaseModel):
    mentions: list[MentionOut]
    unread_count: int
    next_cursor: str | None


NotifierDep = Annotated[Notifier, Depends(provided(Notifier))]


@router.get("/mentions", response_model=MentionPage, responses=errors({400: ["invalid_cursor"]}))
async def list_mentions(
    notifier: NotifierDep,
    user: CurrentUser,
    unread: Annotated[bool, Query(description="Only mentions not yet marked read.")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> MentionPage:
    """The caller's mentions, newest first, with how many are unread."""
    mentions = notifier.mentions
    items, next_cursor = await mentions.page(
        user.user_id, unread_only=unread, limit=limit, cursor=cursor
    )
    return MentionPage(
        mentions=[MentionOut.model_validate(i) for i in items],
        unread_count=await mentions.unread_count(user.user_id),
        next_cursor=next_cursor,
    )


@router.post(
    "/mentions/{mention_id}/read",
    status_code=204,
    responses=errors({404: ["mention_not_found"]}),
)
async def mark_mention_read(mention_id: str, notifier: NotifierDep, user: CurrentUser) -> Response:
    """Mark one of the caller's mentions read (404 for anyone else's)."""
    at = utc_iso(time.time())
    if not await notifier.mentions.mark_read(user.user_id, mention_id[:256], at):
        raise NotFound("no such mention", code="mention_not_found")
    return Response(status_code=204)


@router.websocket("/ws")
async def notifications_ws(
    websocket: WebSocket, notifier: NotifierDep, since: str | None = None
) -> None:
    """Frames `{"type", "data", "cursor"}` for what the caller may read; the first
    is `session.ready`. Token: a first frame `{"type": "auth", "token": …}` (or
    `?token=`, which proxies may log). The socket closes 4401 `token_expired` at
    the token's `exp` unless an auth frame with a fresh token of the same user
    came first (answered `session.renewed`); 4401 `token_revoked` once Cognito
    revoked it; 4429 `too_many_sessions` beyond the per-user cap. Resume with
    `?since=<cursor of the last frame you got>`. `room.updated` frames (landing
    page changes, any role) have no cursor and are not replayed: fetch
    `GET /rooms` once on (re)connect. A member's `{"type": "typing", "channel_id"}`
    becomes `typing` frames to the channel's other members (ephemeral too)."""
    try:
        auth = await SessionAuth.connect(websocket)
    except WebSocketDisconnect:
        return
    except ServiceUnavailable as exc:  # the user pool, unreachable beyond its grace
        await _refuse(websocket, CLOSE_TRY_LATER, exc.error_code)
        return
    except BelfryError as exc:
        await _refuse(websocket, CLOSE_UNAUTHORIZED, exc.error_code)
        return
    settings = notifier.settings
    limit = SessionLimit(
        notifier.leases,
        auth.user_id,
        limit=settings.notifier_ws_max_per_user,
        lease_seconds=settings.notifier_ws_lease_seconds,
    )
    if not await limit.enter():
        await _refuse(websocket, CLOSE_TOO_MANY, "too_many_sessions")
        return
    session = Session(
        websocket,
        auth.principal,
        notifier.feed,
        replay_limit=settings.notifier_replay_limit,
        send_buffer=settings.notifier_ws_send_buffer,
        send_timeout=settings.notifier_ws_send_timeout_seconds,
        poll_seconds=settings.notifier_ws_poll_seconds,
        auth=auth,
        limit=limit,
        typing=notifier.typing,
    )
    notifier.hub.add(session)
    try:
        if await session.start(since):
            await session.run()
    except WebSocketDisconnect:
        pass
    finally:
        notifier.hub.remove(session)
        await limit.leave()


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    if websocket.application_state != WebSocketState.DISCONNECTED:
        await websocket.close(code, reason)
