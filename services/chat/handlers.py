"""chat's event handlers, and the table of which queue feeds which."""

from __future__ import annotations

from shared.bus import RejectEvent
from shared.events import ChannelJoined, Envelope
from shared.topology import HandlerTable

from .channels import Channels, UnknownChannel

MEMBERSHIP_QUEUE = "chat.membership"


async def on_channel_joined(
    event: ChannelJoined, envelope: Envelope, *, channels: Channels
) -> None:
    """Keep a membership another service made; idempotent through the inbox row
    written with it. A channel chat does not know is refused, not acknowledged."""
    try:
        await channels.record_join(event, envelope, MEMBERSHIP_QUEUE)
    except UnknownChannel as exc:
        raise RejectEvent("unknown_channel", str(exc)) from None


HANDLERS: HandlerTable = {
    MEMBERSHIP_QUEUE: {ChannelJoined: on_channel_joined},
}
