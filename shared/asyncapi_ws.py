"""The notifier's WebSocket in the AsyncAPI document (`shared.asyncapi`).

`/notifications/ws` is one channel on its own server: the frame a client sends
(`auth`), one `send` operation per frame type the notifier writes, the
`?since=` resume parameter (the channel's `ws` binding) and the close codes
(`x-close-codes`). A feed frame's `data` is its event's schema (shared/events.py);
the rest is the tables here (`FRAMES`, `CLOSE_CODES`), which
`tests/unit/test_asyncapi.py` holds against the notifier's code: every frame
type it can write and every close code it can use must be in them, and the
frames a real session writes must match their schemas.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from shared import asyncapi_typing as typing_frames
from shared.auth.dependencies import WEBSOCKET_AUTH_TIMEOUT_SECONDS
from shared.events import (
    ChannelJoined,
    ChannelLeft,
    ChannelRead,
    EventData,
    MessageDeleted,
    MessagePosted,
    MessageUpdated,
    RoomUpdated,
    UserMentioned,
)

CONTENT_TYPE = "application/json"  # as shared.asyncapi's
SCHEMAS = "#/components/schemas/"  # as shared.asyncapi's

WS_SERVER = "notifier"
WS_CHANNEL = "notifications.ws"
WS_PATH = "/notifications/ws"
WS_BINDING_VERSION = "0.1.0"
WS_MESSAGE_PREFIX = "ws."  # components.messages `ws.<frame type>`
AUTH_FRAME = "auth"
TYPING_FRAME, TYPING_REQUEST = typing_frames.TYPING_FRAME, typing_frames.TYPING_REQUEST
CURSOR_SCHEMA = "Cursor"

# The feed frames: `data` is the event's data, as the notifier writes it to the feed.
FEED_FRAMES: Mapping[str, type[EventData]] = {
    "message.posted": MessagePosted,
    "message.updated": MessageUpdated,
    "message.deleted": MessageDeleted,
    "user.mentioned": UserMentioned,
    "channel.joined": ChannelJoined,
    "channel.left": ChannelLeft,
    "channel.read": ChannelRead,
}


def _room_view() -> dict[str, Any]:
    """`room.updated`'s data: RoomUpdated without its `version` (board.RoomView)."""
    event = RoomUpdated.model_json_schema()
    properties = {k: v for k, v in event["properties"].items() if k != "version"}
    return {
        "type": "object",
        "title": "RoomView",
        "description": "What the landing page shows of a room, merged per room by the notifier.",
        "properties": properties,
        "required": [name for name in event["required"] if name in properties],
    }


# frame type -> (has a cursor, summary, description, the schema of `data`)
FRAMES: Mapping[str, tuple[bool, str, str, dict[str, Any]]] = {
    "session.ready": (
        True,
        "The first frame of every session.",
        "Sent once the token (and `since`, if given) are accepted, before any other frame. "
        "`cursor` is where the session starts: after `since`, else the feed's head; `head` "
        "is the feed's head now.",
        {
            "type": "object",
            "properties": {
                "user_id": {"type": "string", "description": "The token's subject."},
                "head": {"$ref": SCHEMAS + CURSOR_SCHEMA},
            },
            "required": ["user_id", "head"],
        },
    ),
    "session.renewed": (
        False,
        "A renewal's token was accepted.",
        "The answer to an `auth` frame after the first: the session now ends at the new "
        "token's `exp`, and the new token's groups decide what it is shown. No cursor.",
        {
            "type": "object",
            "properties": {
                "expires_at": {
                    "type": "integer",
                    "description": "The new token's `exp`, epoch seconds.",
                }
            },
            "required": ["expires_at"],
        },
    ),
    **{
        frame: (
            True,
            f"A {model.TYPE} event of the caller's feed.",
            f"`data` is the {model.TYPE} event's data (shared/events.py). A feed row: it has a "
            "cursor, comes in feed order and is replayed after `?since=`. Sent only if the "
            'session\'s token may see it (docs/notifier.md, "Who sees what").',
            {"$ref": SCHEMAS + model.TYPE},
        )
        for frame, model in FEED_FRAMES.items()
    },
    "room.updated": (
        False,
        "What the landing page shows of a room changed.",
        "Sent to every signed-in session, any role. Ephemeral: no cursor, in no feed, never "
        "replayed; fetch `GET /rooms` once on (re)connect and apply these on top. Coalesced "
        "per room (at most one frame per BELFRY_NOTIFIER_ROOM_FRAME_INTERVAL_SECONDS).",
        _room_view(),
    ),
    TYPING_FRAME: typing_frames.SERVER_FRAME,
}

# code -> (reasons, when, what the client should do)
CLOSE_CODES: Mapping[int, tuple[tuple[str, ...], str, str]] = {
    1001: (
        ("server shutting down",),
        "The notifier process is stopping.",
        "Reconnect (to another replica) with the last cursor.",
    ),
    1011: (
        ("internal error: reconnect with your last cursor",),
        "An unexpected error in the session.",
        "Reconnect with the last cursor.",
    ),
    1013: (
        ("auth_unavailable",),
        "The user pool has been unreachable for longer than "
        "BELFRY_COGNITO_REVOCATION_OUTAGE_GRACE_SECONDS (on connect or at a re-check).",
        "Try again later.",
    ),
    4400: (
        ("not a cursor: …", "unknown cursor"),
        "`since` is not a cursor, or is ahead of the feed.",
        "Connect without `since`.",
    ),
    4401: (
        ("unauthorized", "invalid_token", "token_expired", "token_revoked", "subject_mismatch"),
        "No auth frame within 10 s (or not one as the first frame), a token that does not "
        "verify, the session's token reached its `exp` (`token_expired`), the user pool "
        "revoked it (`token_revoked`), or a renewal was refused (its error code; "
        "`subject_mismatch`: another user's token).",
        "Get a fresh token and reconnect with the last cursor.",
    ),
    4410: (
        ("cursor too old: refetch and reconnect",),
        "`since` is more than BELFRY_NOTIFIER_REPLAY_LIMIT rows behind the feed's head.",
        "Fetch the state over HTTP, then connect without `since`.",
    ),
    4429: (
        ("too_many_sessions", "too slow: reconnect with your last cursor"),
        "`too_many_sessions`: the user already holds BELFRY_NOTIFIER_WS_MAX_PER_USER sockets "
        "over every replica (right after the handshake, or when a lost lease cannot be "
        "taken again). Otherwise the client was too slow: its send buffer stayed full, or "
        "one frame could not be written, for BELFRY_NOTIFIER_WS_SEND_TIMEOUT_SECONDS.",
        "`too_many_sessions`: close another of the user's sockets first. Too slow: "
        "reconnect with the last cursor.",
    ),
}


def _frame_schema_name(frame_type: str) -> str:
    """`session.ready` -> `SessionReadyFrame`."""
    return "".join(part.capitalize() for part in frame_type.split(".")) + "Frame"


def schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {
        CURSOR_SCHEMA: {
            "type": "string",
            "title": "Cursor",
            "pattern": "^[0-9]{1,18}$",
            "description": (
                "A place in the caller's feed (its row number, as a string). Opaque to "
                "clients: keep the last one received and pass it as `?since=` to resume."
            ),
        },
        _frame_schema_name(AUTH_FRAME): {
            "type": "object",
            "title": "AuthFrame",
            "properties": {
                "type": {"type": "string", "const": AUTH_FRAME},
                "token": {"type": "string", "minLength": 1, "description": "An access token."},
            },
            "required": ["type", "token"],
        },
        _frame_schema_name(TYPING_REQUEST): typing_frames.request_schema(
            _frame_schema_name(TYPING_REQUEST)
        ),
    }
    for frame_type, (cursor, _, _, data) in FRAMES.items():
        properties: dict[str, Any] = {
            "type": {"type": "string", "const": frame_type},
            "data": copy.deepcopy(data),
        }
        if cursor:
            properties["cursor"] = {"$ref": SCHEMAS + CURSOR_SCHEMA}
        schemas[_frame_schema_name(frame_type)] = {
            "type": "object",
            "title": _frame_schema_name(frame_type),
            "properties": properties,
            "required": list(properties),
        }
    return schemas


def messages() -> dict[str, dict[str, Any]]:
    messages: dict[str, dict[str, Any]] = {
        WS_MESSAGE_PREFIX + AUTH_FRAME: {
            "name": AUTH_FRAME,
            "title": "auth (client to server)",
            "summary": "The client's token: the first frame, and again to renew the session.",
            "description": (
                f"The first frame must be this one, within {WEBSOCKET_AUTH_TIMEOUT_SECONDS:g} s of "
                "connecting (`?token=` works too, but query strings end up in proxies' logs). "
                "Sent again at any time with a fresh token of the same user, it renews the "
                "session (answered `session.renewed`; refused: closed 4401). Any other frame "
                "from the client is ignored."
            ),
            "contentType": CONTENT_TYPE,
            "payload": {"$ref": SCHEMAS + _frame_schema_name(AUTH_FRAME)},
            "tags": [{"name": WS_SERVER}],
        },
        WS_MESSAGE_PREFIX + TYPING_REQUEST: {
            **typing_frames.REQUEST_MESSAGE,
            "contentType": CONTENT_TYPE,
            "payload": {"$ref": SCHEMAS + _frame_schema_name(TYPING_REQUEST)},
            "tags": [{"name": WS_SERVER}],
        },
    }
    for frame_type, (cursor, summary, description, _) in FRAMES.items():
        messages[WS_MESSAGE_PREFIX + frame_type] = {
            "name": frame_type,
            "title": f"{frame_type} (server to client)",
            "summary": summary,
            "description": description,
            "contentType": CONTENT_TYPE,
            "payload": {"$ref": SCHEMAS + _frame_schema_name(frame_type)},
            "tags": [{"name": WS_SERVER}],
            "x-belfry-cursor": cursor,
        }
    return messages


def _close_codes() -> list[dict[str, Any]]:
    return [
        {"code": code, "reasons": list(reasons), "when": when, "then": then}
        for code, (reasons, when, then) in sorted(CLOSE_CODES.items())
    ]


def channel() -> dict[str, Any]:
    codes = "; ".join(
        f"**{code}** ({', '.join(f'`{r}`' for r in reasons)}): {when.rstrip('.')}"
        for code, (reasons, when, _) in sorted(CLOSE_CODES.items())
    )
    return {
        "address": WS_PATH,
        "title": "Notifications WebSocket",
        "summary": "The caller's live feed: messages, mentions, joins, and room changes.",
        "description": (
            "One connection per client session. The client sends an `auth` frame first; the "
            "server answers `session.ready`, then sends the caller's feed frames (each with "
            "a `cursor`, in feed order, replayed after `?since=`) and the ephemeral "
            "`room.updated` frames (no cursor). Resume after a disconnect with "
            "`?since=<the cursor of the last frame that had one>`: no gap, no duplicate. "
            "A session ends with its token unless renewed by another `auth` frame. "
            f"The server closes with these codes (the reason is the close frame's): {codes}. "
            "The same, machine-readable, in `x-close-codes`; docs/notifier.md explains it all."
        ),
        "messages": {
            name[len(WS_MESSAGE_PREFIX) :]: _ref("components", "messages", name)
            for name in messages()
        },
        "servers": [_ref("servers", WS_SERVER)],
        "bindings": {
            "ws": {
                "method": "GET",
                "query": {
                    "type": "object",
                    "properties": {
                        "since": {
                            "type": "string",
                            "pattern": "^[0-9]{1,18}$",
                            "description": (
                                "Resume after this cursor (the last frame received that had "
                                "one): the frames after it are replayed, then live ones. "
                                "Closed 4400 if it is not a cursor or is ahead of the feed, "
                                "4410 if it is more than BELFRY_NOTIFIER_REPLAY_LIMIT rows "
                                "behind."
                            ),
                        },
                        "token": {
                            "type": "string",
                            "description": (
                                "The access token, instead of the first `auth` frame. Avoid: "
                                "query strings end up in proxies' access logs."
                            ),
                        },
                    },
                },
                "bindingVersion": WS_BINDING_VERSION,
            }
        },
        "x-close-codes": _close_codes(),
    }


def operations() -> Iterator[tuple[str, dict[str, Any]]]:
    yield (
        f"receive.{WS_SERVER}.ws.{AUTH_FRAME}",
        {
            "action": "receive",
            "channel": _ref("channels", WS_CHANNEL),
            "messages": [_ref("channels", WS_CHANNEL, "messages", AUTH_FRAME)],
            "title": "notifier receives auth frames",
            "summary": "The client authenticates, and later renews its session.",
            "tags": [{"name": WS_SERVER}],
            "x-belfry-websocket": WS_PATH,
        },
    )
    yield (
        f"receive.{WS_SERVER}.ws.{TYPING_REQUEST}",
        {
            **typing_frames.REQUEST_OPERATION,
            "channel": _ref("channels", WS_CHANNEL),
            "messages": [_ref("channels", WS_CHANNEL, "messages", TYPING_REQUEST)],
            "tags": [{"name": WS_SERVER}],
            "x-belfry-websocket": WS_PATH,
        },
    )
    for frame_type, (_, summary, _, _) in FRAMES.items():
        yield (
            f"send.{WS_SERVER}.ws.{frame_type}",
            {
                "action": "send",
                "channel": _ref("channels", WS_CHANNEL),
                "messages": [_ref("channels", WS_CHANNEL, "messages", frame_type)],
                "title": f"notifier sends {frame_type}",
                "summary": summary,
                "tags": [{"name": WS_SERVER}],
                "x-belfry-websocket": WS_PATH,
            },
        )


def server() -> dict[str, Any]:
    return {
        "host": "127.0.0.1:8080",
        "protocol": "ws",
        "title": "notifier WebSocket",
        "description": (
            f"Every notifier process on BELFRY_PORT (`make run`: ws://127.0.0.1:8080{WS_PATH}). "
            f"Behind the Ingress or a gateway it is `wss://<host>{WS_PATH}`; whatever is in "
            "front must pass WebSocket upgrades through and keep idle connections open."
        ),
    }


SUMMARY = (
    f"Clients get their notifications over the notifier's WebSocket `{WS_PATH}` (channel "
    f"`{WS_CHANNEL}`, server `{WS_SERVER}`): an `auth` frame first, then JSON frames "
    "`{type, data, cursor}`, resumable with `?since=`; its close codes are in the "
    "channel's `x-close-codes`."
)


def _ref(*parts: str) -> dict[str, str]:
    """A local reference; JSON pointer tokens escaped (RFC 6901)."""
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return {"$ref": "#/" + "/".join(escaped)}
