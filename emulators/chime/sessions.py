"""Messaging sessions: the WebSocket side of Chime SDK messaging.

A client connects to `/connect?userArn=…&sessionId=…` (SigV4 query parameters
are accepted and ignored), gets a SESSION_ESTABLISHED frame, then one frame
per channel event of every channel its user is a member of, in Chime's form:

    {"Headers": {"x-amz-chime-event-type": "CREATE_CHANNEL_MESSAGE",
                 "x-amz-chime-message-type": "STANDARD"},
     "Payload": "<the ChannelMessage as a JSON string>"}
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

SYSTEM = "SYSTEM"
# Close codes: the Chime JS SDK does not reconnect after 4401 or 4002.
CLOSE_UNAUTHORIZED = 4401
CLOSE_BAD_REQUEST = 4002
CLOSE_GOING_AWAY = 1001


def _iso(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _with_iso_timestamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _iso(item)
            if key.endswith("Timestamp") and isinstance(item, int | float)
            else _with_iso_timestamps(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_iso_timestamps(item) for item in value]
    return value


def render_frame(event_type: str, message_type: str, payload: dict[str, Any] | None) -> str:
    """One WebSocket frame; timestamps in the payload are ISO 8601 as Chime sends them."""
    body = "" if payload is None else json.dumps(_with_iso_timestamps(payload))
    headers = {"x-amz-chime-event-type": event_type, "x-amz-chime-message-type": message_type}
    return json.dumps({"Headers": headers, "Payload": body})


@dataclass(frozen=True)
class ChannelEvent:
    """Something that happened in a channel, and who hears of it."""

    event_type: str
    message_type: str
    payload: dict[str, Any]
    recipients: frozenset[str]


class MessagingSession:
    def __init__(self, user_arn: str, session_id: str) -> None:
        self.user_arn = user_arn
        self.session_id = session_id
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()


class SessionHub:
    """Connected sessions by user ARN; `publish` never waits."""

    def __init__(self) -> None:
        self._sessions: dict[str, set[MessagingSession]] = {}

    def open(self, user_arn: str, session_id: str) -> MessagingSession:
        session = MessagingSession(user_arn, session_id)
        self._sessions.setdefault(user_arn, set()).add(session)
        return session

    def close(self, session: MessagingSession) -> None:
        sessions = self._sessions.get(session.user_arn)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._sessions[session.user_arn]

    def close_all(self) -> None:
        for sessions in list(self._sessions.values()):
            for session in sessions:
                session.outbox.put_nowait(None)
        self._sessions.clear()

    def publish(self, event: ChannelEvent) -> int:
        targets = [s for arn in event.recipients for s in self._sessions.get(arn, ())]
        if targets:
            frame = render_frame(event.event_type, event.message_type, event.payload)
            for session in targets:
                session.outbox.put_nowait(frame)
        return len(targets)

    def connected(self) -> dict[str, int]:
        return {arn: len(sessions) for arn, sessions in self._sessions.items()}


async def serve_session(
    websocket: WebSocket, hub: SessionHub, user_exists: Callable[[str], bool]
) -> None:
    """Run one messaging session until either side closes it."""
    await websocket.accept()
    user_arn = websocket.query_params.get("userArn", "")
    session_id = websocket.query_params.get("sessionId", "")
    if not user_arn or not session_id:
        await websocket.close(CLOSE_BAD_REQUEST, "userArn and sessionId are required")
        return
    if not user_exists(user_arn):
        await websocket.close(CLOSE_UNAUTHORIZED, "userArn is not an AppInstanceUser")
        return
    session = hub.open(user_arn, session_id)
    reader = asyncio.create_task(_wait_for_disconnect(websocket, session))
    try:
        await websocket.send_text(render_frame("SESSION_ESTABLISHED", SYSTEM, None))
        while (frame := await session.outbox.get()) is not None:
            await websocket.send_text(frame)
        if not reader.done():
            await websocket.close(CLOSE_GOING_AWAY, "emulator reset")
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away mid-send
    finally:
        hub.close(session)
        reader.cancel()


async def _wait_for_disconnect(websocket: WebSocket, session: MessagingSession) -> None:
    """Drain client frames (Chime ignores them) and wake the writer on disconnect."""
    try:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
    finally:
        session.outbox.put_nowait(None)
