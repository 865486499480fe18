"""WebSocket sessions: each one pumps its user's feed, in order, to the client.

A session never sends an event it got from the bus: it sends feed rows, in
their order, after the last one it sent. Rows this process has just committed
are handed over directly when they follow on (`offer`); otherwise the session
is woken and reads its feed. Replay (`?since=`) and live delivery are the same
loop, so there is no gap between them and no duplicate; a client that
reconnects anywhere resumes from its last frame's cursor.

Ephemeral frames (`room.updated`, `Hub.broadcast`) are the exception: they go
to every session here, carry no cursor and are never replayed. They take the
same send buffer and slow-client rules; while the buffer is full only the
latest frame per key waits, so a client behind gets the latest state, not
every step.

A session ends with its token (`shared.auth.SessionAuth`): at the token's `exp`
it is closed 4401 `token_expired`, unless the client sent a fresh token of the
same user before, in a frame `{"type": "auth", "token": "<jwt>"}` (answered by
`{"type": "session.renewed", "data": {"expires_at": <epoch s>}}`); in Cognito
mode the token is checked against the user pool again every
`BELFRY_COGNITO_REVOCATION_CHECK_SECONDS`, and a revoked one closes 4401
`token_revoked`. A user holds at most `limit` sessions over every replica
(`SessionLimit`, leases renewed while open); the next is closed 4429
`too_many_sessions`.

The only other frame a client may send is `{"type": "typing", "channel_id": …}`,
handed to the typing relay (typing_relay.py) without waiting; anything else is
ignored.

Close codes: 4401 no, bad, expired or revoked token, or a refused renewal (the
reason is the error code: `invalid_token`, `token_expired`, `token_revoked`,
`subject_mismatch`); 4400 a malformed or unknown cursor; 4410 a cursor more
than `replay_limit` frames behind (fetch state over HTTP, then connect without
`since`); 4429 a client too slow to take its frames (its send buffer stayed
full, or one frame could not be written, for the send timeout): reconnect with
the last cursor; 4429 `too_many_sessions`: close another of the user's sockets
first; 1013 the user pool has been unreachable for longer than its grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from shared.auth import Principal, SessionAuth, auth_frame_token
from shared.errors import BelfryError, ServiceUnavailable, Unauthorized
from shared.logging import get_logger
from shared.metrics import Counter, Gauge

from .domain import (
    READY_FRAME,
    Audience,
    FeedRow,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    frame_text,
    may_see,
)
from .limits import SessionEnded, SessionLimit
from .ports import FeedReader, Typist
from .typing_relay import typing_request

log = get_logger("belfry.notifier")

CLOSE_BAD_CURSOR = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_CURSOR_TOO_OLD = 4410
CLOSE_SLOW_CLIENT = 4429
CLOSE_TRY_LATER = 1013
RENEWED_FRAME = "session.renewed"
PAGE = 100
FIRST_READ = 10  # most wake-ups find a row or two: ask for few keys first

CONNECTIONS = Gauge(
    "belfry_notifier_ws_connections", "Open notification WebSockets in this process."
)
FRAMES_SENT = Counter(
    "belfry_notifier_ws_frames_total", "Frames written to notification WebSockets.", ["type"]
)
CLOSED = Counter(
    "belfry_notifier_ws_closed_total", "WebSockets closed by the server, by reason.", ["reason"]
)


class SlowClient(Exception):
    pass


class Hub:
    """This process's open sessions by user: what a bus event wakes."""

    def __init__(self) -> None:
        self._sessions: dict[str, set[Session]] = {}

    def add(self, session: Session) -> None:
        self._sessions.setdefault(session.user_id, set()).add(session)
        CONNECTIONS.inc()

    def remove(self, session: Session) -> None:
        sessions = self._sessions.get(session.user_id)
        if sessions is not None and session in sessions:
            sessions.discard(session)
            CONNECTIONS.dec()
            if not sessions:
                del self._sessions[session.user_id]

    def poke(self, users: Iterable[str]) -> None:
        for user in users:
            for session in self._sessions.get(user, ()):
                session.wake.set()

    def deliver(self, rows: Mapping[str, list[FeedRow]]) -> None:
        """Rows this process has just committed: sessions that are caught up take
        them as they are, the others reread their feed."""
        for user, user_rows in rows.items():
            for session in self._sessions.get(user, ()):
                session.offer(user_rows)

    def broadcast(self, key: str, frame_type: str, text: str) -> None:
        """An ephemeral frame to every session here (each signed in, any role)."""
        for sessions in self._sessions.values():
            for session in sessions:
                session.push(key, frame_type, text)

    def push_to(
        self,
        users: Iterable[str],
        key: str,
        frame_type: str,
        text: str,
        visible: Callable[[Principal], bool],
    ) -> int:
        """An ephemeral frame to these users' sessions here that `visible` admits."""
        sent = 0
        for user in users:
            for session in self._sessions.get(user, ()):
                if visible(session.principal):
                    session.push(key, frame_type, text)
                    sent += 1
        return sent

    def interested(self, audience: Audience) -> bool:
        """Could any session here be shown something about this channel?"""
        return any(
            may_see(session.principal, audience)
            for sessions in self._sessions.values()
            for session in sessions
        )

    def __len__(self) -> int:
        return sum(len(s) for s in self._sessions.values())

    async def close_all(self, code: int = 1001) -> None:
        sessions = [s for group in self._sessions.values() for s in group]
        await asyncio.gather(*(s.close(code, "server shutting down") for s in sessions))


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        feed: FeedReader,
        *,
        replay_limit: int,
        send_buffer: int,
        send_timeout: float,
        poll_seconds: float,
        auth: SessionAuth | None = None,
        limit: SessionLimit | None = None,
        typing: Typist | None = None,
    ) -> None:
        self.websocket = websocket
        self._typing = typing
        self._principal = principal
        self.user_id = principal.user_id
        self.auth = auth  # None: the session does not end with a token (unit tests)
        self.limit = limit
        self._feed = feed
        self._replay_limit = replay_limit
        self._send_timeout = send_timeout
        self._poll = poll_seconds
        self.outbound: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=send_buffer)
        self.wake = asyncio.Event()
        self.last = 0
        # ephemeral frames not yet in the buffer: the latest per key, oldest key first
        self._ephemeral: dict[str, tuple[str, str]] = {}
        self._ephemeral_ready = asyncio.Event()
        self._started = False

    @property
    def principal(self) -> Principal:
        """The caller as their latest token says (a renewal may change the groups)."""
        return self.auth.principal if self.auth is not None else self._principal

    async def start(self, since: str | None) -> bool:
        """Accept, check the cursor, send the ready frame; False if closed."""
        if self.websocket.client_state == WebSocketState.CONNECTING:
            await self.websocket.accept()
        head = await self._feed.head(self.user_id)
        if since is None:
            self.last = head
        else:
            try:
                self.last = decode_cursor(since)
            except InvalidCursor as exc:
                await self.close(CLOSE_BAD_CURSOR, str(exc))
                return False
            if self.last > head:
                await self.close(CLOSE_BAD_CURSOR, "unknown cursor")
                return False
            if head - self.last > self._replay_limit:
                await self.close(CLOSE_CURSOR_TOO_OLD, "cursor too old: refetch and reconnect")
                return False
        ready = {"user_id": self.user_id, "head": encode_cursor(head)}
        await self.websocket.send_text(
            json.dumps({"type": READY_FRAME, "data": ready, "cursor": encode_cursor(self.last)})
        )
        self._started = True
        self.wake.set()
        return True

    async def run(self) -> None:
        """Pump, send and listen until the client leaves or is too slow."""
        tasks = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._push_ephemeral()),
            asyncio.create_task(self._send()),
            asyncio.create_task(self._listen()),
        ]
        if self.auth is not None:
            tasks.append(asyncio.create_task(self.auth.watch()))
        if self.limit is not None:
            tasks.append(asyncio.create_task(self.limit.keep()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            error = task.exception()
            if isinstance(error, SlowClient):
                await self.close(CLOSE_SLOW_CLIENT, "too slow: reconnect with your last cursor")
            elif isinstance(error, SessionEnded):
                await self.close(error.code, error.reason)
            elif isinstance(error, Unauthorized):
                await self.close(CLOSE_UNAUTHORIZED, error.error_code)
            elif isinstance(error, ServiceUnavailable):
                await self.close(CLOSE_TRY_LATER, error.error_code)
            elif error is not None and not isinstance(error, WebSocketDisconnect):
                log.warning("ws.session_failed", error=repr(error))
                await self.close(1011, "internal error: reconnect with your last cursor")

    def offer(self, rows: list[FeedRow]) -> None:
        """New rows from this process's writer: take them if they follow on from
        what was sent and the buffer has room; otherwise let the pump read."""
        if not self._started or rows[0].seq != self.last + 1:
            self.wake.set()
            return
        visible = [r for r in rows if r.frame_type and may_see(self.principal, r.audience)]
        if self.outbound.maxsize - self.outbound.qsize() < len(visible):
            self.wake.set()
            return
        for row in visible:
            self.outbound.put_nowait(
                (row.frame_type, frame_text(row.frame_type, row.data, row.seq))
            )
        self.last = rows[-1].seq

    async def _pump(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._poll)
            self.wake.clear()
            more, window = True, FIRST_READ
            while more:
                rows, more = await self._feed.read(self.user_id, self.last, window)
                window = PAGE
                for row in rows:
                    if row.seq <= self.last:  # taken meanwhile from the writer (`offer`)
                        continue
                    if row.frame_type and may_see(self.principal, row.audience):
                        await self._enqueue(row)
                    self.last = row.seq

    def push(self, key: str, frame_type: str, text: str) -> None:
        """An ephemeral frame: it replaces one of the same key still waiting and
        is sent after `session.ready`, wherever the feed's cursor is."""
        self._ephemeral[key] = (frame_type, text)
        self._ephemeral_ready.set()

    async def _push_ephemeral(self) -> None:
        while True:
            await self._ephemeral_ready.wait()
            self._ephemeral_ready.clear()
            while self._ephemeral:  # one writer: a key's frames stay in order
                await self._put(self._ephemeral.pop(next(iter(self._ephemeral))))

    async def _enqueue(self, row: FeedRow) -> None:
        await self._put((row.frame_type, frame_text(row.frame_type, row.data, row.seq)))

    async def _put(self, item: tuple[str, str]) -> None:
        try:
            self.outbound.put_nowait(item)
        except asyncio.QueueFull:
            # The feed is durable, so a full buffer only pauses the pump (and the
            # ephemeral frames, which merge meanwhile); a client that stays
            # this far behind for the send timeout is closed.
            try:
                await asyncio.wait_for(self.outbound.put(item), self._send_timeout)
            except TimeoutError:
                raise SlowClient from None

    async def _send(self) -> None:
        while True:
            frame_type, text = await self.outbound.get()
            try:
                # a deadline, not wait_for: no task per frame on the hot path
                async with asyncio.timeout(self._send_timeout):
                    await self.websocket.send_text(text)
            except TimeoutError:
                raise SlowClient from None
            FRAMES_SENT.labels(frame_type).inc()

    async def _listen(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            token = auth_frame_token(text)
            if token is not None and self.auth is not None:
                await self._renew(self.auth, token)
            elif self._typing is not None and (channel_id := typing_request(text)):
                self._typing.typed(self.principal, channel_id)  # refused ones: ignored

    async def _renew(self, auth: SessionAuth, token: str) -> None:
        """An auth frame: a refused token ends the session (4401, its error code)."""
        try:
            await auth.renew(token)
        except ServiceUnavailable:
            raise
        except BelfryError as exc:
            raise SessionEnded(CLOSE_UNAUTHORIZED, exc.error_code) from None
        data = {"expires_at": int(auth.expires_at)}
        await self._put((RENEWED_FRAME, json.dumps({"type": RENEWED_FRAME, "data": data})))

    async def close(self, code: int, reason: str) -> None:
        CLOSED.labels(str(code)).inc()
        if self.websocket.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(Exception):
            await self.websocket.close(code, reason)
