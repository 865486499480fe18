"""Who consumes what: every durable queue of the platform and its routing keys.

One declarative table (DESIGN.md "Messaging topology"). Each service consumes
its own queues from it and, at start-up, *declares* all of them, so that an
event is never unroutable (and refused, since every publish is mandatory)
just because its consumer has not started yet. Queue names are
`<service>.<handler>`; per-replica fan-out queues are not listed here (they
live and die with their replica).
"""

from __future__ import annotations

from shared.bus import Handler, Subscription

QUEUES: dict[str, tuple[str, ...]] = {
    # rooms keeps its read model of scheduled rooms
    "rooms.schedule": ("room.scheduled", "room.activated", "room.ended", "room.cancelled"),
    # rooms counts attendees on the landing page from its own attendance events
    "rooms.attendance": ("room.meeting_started", "room.attendee_joined", "room.attendee_left"),
    # chat keeps channel membership state (lazy joins made by the notifier)
    "chat.membership": ("chat.channel_joined",),
    # notifier: lazy joins and the mention inbox
    "notifier.mentions": ("chat.user_mentioned",),
    # notifier: the per-user feed that WebSocket clients resume from
    "notifier.feed": ("chat.message_posted", "chat.user_mentioned", "chat.channel_joined"),
}


def subscription(queue: str, handler: Handler) -> Subscription:
    """A durable subscription to a queue of the table, with its routing keys."""
    return Subscription(queue, QUEUES[queue], handler)
