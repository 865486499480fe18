"""`/notifications`: the mention inbox over HTTP and the live feed over a WebSocket."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect, WebSocketState

from shared.auth import CurrentUser, authenticate_websocket
from shared.clock import utc_iso
from shared.errors import BelfryError, NotFound
from shared.service import provided

from .live import CLOSE_UNAUTHORIZED, Session
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


@router.get("/mentions", response_model=MentionPage)
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


@router.post("/mentions/{mention_id}/read", status_code=204)
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
    is `session.ready`. Token: `?token=` or a first frame `{"type": "auth",
    "token": …}`. Resume with `?since=<cursor of the last frame you got>`.
    `room.updated` frames (landing page changes, any role) have no cursor and
    are not replayed: fetch `GET /rooms` once on (re)connect."""
    try:
        principal = await authenticate_websocket(websocket)
    except WebSocketDisconnect:
        return
    except BelfryError as exc:
        if websocket.client_state == WebSocketState.CONNECTING:
            await websocket.accept()
        await websocket.close(CLOSE_UNAUTHORIZED, exc.message[:120])
        return
    session = Session(
        websocket,
        principal,
        notifier.feed,
        replay_limit=notifier.settings.notifier_replay_limit,
        send_buffer=notifier.settings.notifier_ws_send_buffer,
        send_timeout=notifier.settings.notifier_ws_send_timeout_seconds,
        poll_seconds=notifier.settings.notifier_ws_poll_seconds,
    )
    notifier.hub.add(session)
    try:
        if await session.start(since):
            await session.run()
    except WebSocketDisconnect:
        pass
    finally:
        notifier.hub.remove(session)
