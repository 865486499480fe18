"""Who consumes what: every queue of the platform and the event types it takes.

One declarative table (DESIGN.md "Messaging topology"); the routing keys
follow from the event classes (`shared.events`). Each service consumes its own
queues from it and, at start-up, *declares* every durable one, so that an
event is never unroutable (and refused, since every publish is mandatory)
just because its consumer has not started yet. Queue names are
`<service>.<handler>`: the service before the dot consumes it. A fan-out
queue is per replica (`<name>.<instance>`, classic, expiring): it lives and
dies with its replica and is not declared ahead.

`wire` turns a service's handler table (queue -> event class -> handler) into
subscriptions: the dispatcher routes each delivery on its event type, and an
event type the table does not name is dead-lettered there, once, for every
service (`shared.bus.base.Dispatcher`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial

from shared.bus import Handler, Subscription
from shared.events import (
    AttendeeJoined,
    AttendeeLeft,
    AttendeePresenceChanged,
    ChannelJoined,
    ChannelLeft,
    ChannelRead,
    Envelope,
    EventData,
    MeetingEnded,
    MeetingStarted,
    MessageDeleted,
    MessagePosted,
    MessageUpdated,
    RoomActivated,
    RoomCancelled,
    RoomEnded,
    RoomScheduled,
    RoomUpdated,
    UserMentioned,
    UserTyping,
)


@dataclass(frozen=True)
class Queue:
    name: str
    events: tuple[type[EventData], ...]
    purpose: str
    fanout: bool = False  # per replica: `<name>.<instance>`, every replica gets every event

    @property
    def consumer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def routing_keys(self) -> tuple[str, ...]:
        return tuple(event.ROUTING_KEY for event in self.events)


_QUEUES = (
    Queue(
        "rooms.schedule",
        (RoomScheduled, RoomActivated, RoomEnded, RoomCancelled),
        "rooms keeps its read model of scheduled rooms (the landing page) and ends "
        "a room's Chime meeting when the room ends.",
    ),
    Queue(
        "rooms.attendance",
        (
            MeetingStarted,
            AttendeeJoined,
            AttendeeLeft,
            AttendeePresenceChanged,
            MeetingEnded,
            RoomUpdated,
        ),
        "rooms' own attendance facts, bound so that every publish is routable (taken "
        "off without effect: the state moved in the transaction that announced them).",
    ),
    Queue(
        "chat.membership",
        (ChannelJoined,),
        "chat keeps channel membership state (lazy joins made by the notifier).",
    ),
    Queue(
        "notifier.mentions",
        (UserMentioned,),
        "The notifier's lazy joins (a mentioned manager becomes a member) and the mention inbox.",
    ),
    Queue(
        "notifier.feed",
        (
            MessagePosted,
            MessageUpdated,
            MessageDeleted,
            UserMentioned,
            ChannelJoined,
            ChannelLeft,
            ChannelRead,
        ),
        "The notifier's per-user feed, which WebSocket clients resume from.",
    ),
    Queue(
        "notifier.fanout",
        (
            MessagePosted,
            MessageUpdated,
            MessageDeleted,
            UserMentioned,
            ChannelJoined,
            ChannelLeft,
            ChannelRead,
            RoomUpdated,
            UserTyping,
        ),
        "Per notifier replica: wakes the WebSocket sessions of that replica once the "
        "feed has the event, sends every signed-in session `room.updated`, and relays "
        "`typing` (UserTyping, ephemeral) to the sessions of the channel's members.",
        fanout=True,
    ),
)
QUEUES: dict[str, Queue] = {queue.name: queue for queue in _QUEUES}

# Who publishes each event type (the AsyncAPI document's `send` operations).
PUBLISHERS: dict[type[EventData], tuple[str, ...]] = {
    RoomScheduled: ("scheduler",),
    RoomActivated: ("scheduler",),
    RoomEnded: ("scheduler",),
    RoomCancelled: ("scheduler",),
    MeetingStarted: ("rooms",),
    AttendeeJoined: ("rooms",),
    AttendeeLeft: ("rooms",),
    AttendeePresenceChanged: ("rooms",),
    MeetingEnded: ("rooms",),
    RoomUpdated: ("rooms",),
    MessagePosted: ("chat",),
    UserMentioned: ("chat",),
    MessageUpdated: ("chat",),
    MessageDeleted: ("chat",),
    ChannelJoined: ("chat", "notifier"),
    ChannelLeft: ("chat",),
    ChannelRead: ("chat",),
    UserTyping: ("notifier",),
}


def durable_bindings() -> dict[str, tuple[str, ...]]:
    """Every durable queue and its routing keys: what each process declares."""
    return {q.name: q.routing_keys for q in _QUEUES if not q.fanout}


EventHandler = Callable[..., Awaitable[None]]
"""`async (event, envelope, *, ports...) -> None`: the event's typed data, its
envelope (ids, times) and the handler's ports, by keyword."""
HandlerTable = Mapping[str, Mapping[type[EventData], EventHandler]]
"""queue -> event class -> handler: what each service's `handlers.py` ends with."""


def wire(table: HandlerTable, **ports: object) -> list[Subscription]:
    """Subscriptions for a service's handler table, each handler given the ports
    its keyword-only parameters name. A table that leaves out an event type its
    queue is bound to, or a handler whose port is not provided, fails here, at
    start-up, not at the first delivery."""
    subscriptions = []
    for name, handlers in table.items():
        queue = QUEUES[name]
        missing = set(queue.events) - set(handlers)
        extra = set(handlers) - set(queue.events)
        if missing or extra:
            names = ({e.TYPE for e in missing}, {e.TYPE for e in extra})
            raise ValueError(
                f"the handlers of {name} must cover exactly its events: "
                f"missing {sorted(names[0])}, not bound to it {sorted(names[1])}"
            )
        routed = {event.TYPE: _bind(handler, ports) for event, handler in handlers.items()}
        subscriptions.append(
            Subscription(name, queue.routing_keys, handlers=routed, fanout=queue.fanout)
        )
    return subscriptions


def _bind(handler: EventHandler, ports: Mapping[str, object]) -> Handler:
    wanted = [
        p.name
        for p in inspect.signature(handler).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    absent = [name for name in wanted if name not in ports]
    if absent:
        raise TypeError(f"{handler.__qualname__} needs ports {absent}")
    bound: Callable[..., Awaitable[None]] = partial(handler, **{n: ports[n] for n in wanted})

    async def deliver(envelope: Envelope) -> None:
        await bound(envelope.data, envelope)

    deliver.__qualname__ = handler.__qualname__
    return deliver
