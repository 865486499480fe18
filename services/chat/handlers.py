"""chat's event handlers and the table of which queue feeds which."""

from __future__ import annotations

from shared.bus import Subscription
from shared.events import Envelope
from shared.topology import subscription

from .service import ChatService

MEMBERSHIP_QUEUE = "chat.membership"


async def on_channel_joined(envelope: Envelope, *, chat: ChatService) -> None:
    """Idempotent through the inbox row written with the membership."""
    await chat.record_join(envelope, MEMBERSHIP_QUEUE)


def subscriptions(chat: ChatService) -> list[Subscription]:
    async def channel_joined(envelope: Envelope) -> None:
        await on_channel_joined(envelope, chat=chat)

    return [subscription(MEMBERSHIP_QUEUE, channel_joined)]
