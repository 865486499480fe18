"""chat's event handlers, and the table of which queue feeds which."""

from __future__ import annotations

from shared.bus import RejectEvent
from shared.events import ChannelJoined, Envelope
from shared.topology import HandlerTable

from .channels import Channels, UnknownChannel
from .roles import RoleChanges

MEMBERSHIP_QUEUE = "chat.membership"


async def on_channel_joined(
    event: ChannelJoined, envelope: Envelope, *, channels: Channels, roles: RoleChanges
) -> None:
    """Keep a membership another service made; idempotent through the inbox row
    written with it. A channel chat does not know is refused, not acknowledged.
    A membership its person may not keep (a lazy join that raced a lost role)
    is ended at once, with `ChannelLeft` (`role_lost`)."""
    try:
        await channels.record_join(event, envelope, MEMBERSHIP_QUEUE)
    except UnknownChannel as exc:
        raise RejectEvent("unknown_channel", str(exc)) from None
    if envelope.producer != "chat":
        await roles.enforce(event.channel_id, event.user_id)


HANDLERS: HandlerTable = {
    MEMBERSHIP_QUEUE: {ChannelJoined: on_channel_joined},
}
