"""The typing frames of the notifier's WebSocket in the AsyncAPI document
(`shared.asyncapi_ws` wires them in): the client's `{"type": "typing",
"channel_id"}` and the server's `typing` frame (services/notifier/typing_relay.py).
Both are named `typing`; the client's is the message `ws.client.typing`."""

from __future__ import annotations

from typing import Any

TYPING_FRAME = "typing"
TYPING_REQUEST = "client.typing"  # the client's frame: its message key and schema name

# as asyncapi_ws.FRAMES' entries: (has a cursor, summary, description, the schema of `data`)
SERVER_FRAME: tuple[bool, str, str, dict[str, Any]] = (
    False,
    "Another member of a channel is typing.",
    "Relayed from a member's `typing` frame to the channel's other members whose token "
    "may see the channel, on every replica. Ephemeral: no cursor, in no feed, never "
    "replayed; at most one per typist and channel per "
    "BELFRY_NOTIFIER_TYPING_INTERVAL_SECONDS. Show an indicator for a few seconds.",
    {
        "type": "object",
        "properties": {
            "channel_id": {"type": "string"},
            "user_id": {"type": "string", "description": "Who is typing."},
        },
        "required": ["channel_id", "user_id"],
    },
)

REQUEST_MESSAGE: dict[str, Any] = {
    "name": TYPING_FRAME,
    "title": "typing (client to server)",
    "summary": "The caller is typing in a channel.",
    "description": (
        "Send while the user types (per channel at most one each "
        "BELFRY_NOTIFIER_TYPING_INTERVAL_SECONDS is relayed, the rest are dropped). "
        "Relayed as `typing` frames to the channel's other members only if the caller's "
        "token may see the channel and they are a member of it; otherwise ignored, "
        "without an answer."
    ),
}

REQUEST_OPERATION: dict[str, Any] = {
    "action": "receive",
    "title": "notifier receives typing frames",
    "summary": "A member says they are typing in a channel.",
}


def request_schema(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": name,
        "properties": {
            "type": {"type": "string", "const": TYPING_FRAME},
            "channel_id": {"type": "string", "minLength": 1, "maxLength": 128},
        },
        "required": ["type", "channel_id"],
    }
