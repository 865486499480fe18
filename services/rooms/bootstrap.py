"""The composition root of rooms: tables, store, Chime gateway, use cases,
event handlers. No I/O at import."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared.aws import AwsClients
from shared.bus import EventBus
from shared.clock import Clock
from shared.dynamo import ensure_tables
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.runtime import Check, Component, dynamodb_check, every
from shared.service import ServiceDefinition
from shared.store import Store
from shared.topology import wire

from .adapters.chime import ChimeMeetingGateway
from .adapters.dynamo import DynamoRooms
from .adapters.rows import ROOMS_TABLE, TABLES
from .adapters.sqs import SqsMeetingEvents, provision, queue_url
from .api import SERVICE, router
from .attendance import Attendance
from .handlers import HANDLERS
from .listing import Listing
from .meetings import Meetings
from .presence import Presence
from .settings import RoomsSettings

SPECS = (*TABLES, INBOX_TABLE, OUTBOX_TABLE)


async def build(
    settings: RoomsSettings, aws: AwsClients, bus: EventBus, *, clock: Clock = time.time
) -> Component:
    """`clock` is for tests, which move time instead of waiting for it."""
    names = await ensure_tables(aws.dynamodb, settings.table_prefix, SERVICE, SPECS)
    outbox = Outbox(aws.dynamodb, names[OUTBOX_TABLE.suffix], bus)
    inbox = Inbox(
        aws.dynamodb, names[INBOX_TABLE.suffix], retention_seconds=settings.rooms_retention_seconds
    )
    store = DynamoRooms(aws.dynamodb, Store(aws.dynamodb, inbox=inbox, outbox=outbox), names)
    chime = ChimeMeetingGateway(aws.chime_meetings)
    meetings = Meetings(
        store,
        chime,
        clock=clock,
        wait_seconds=settings.rooms_meeting_wait_seconds,
        lease_seconds=settings.rooms_meeting_lease_seconds,
    )
    attendance = Attendance(
        store,
        chime,
        meetings,
        clock=clock,
        retention_seconds=settings.rooms_retention_seconds,
        window_seconds=settings.rooms_join_window_seconds,
        max_wait_seconds=settings.rooms_join_max_wait_seconds,
        max_batch=settings.rooms_join_batch_max,
        deadline_seconds=settings.rooms_join_deadline_seconds,
    )

    async def relay() -> None:
        await outbox.run_relay(settings.rooms_outbox_relay_seconds)

    loops: list[Callable[[], Awaitable[None]]] = [relay]
    checks: dict[str, Check] = {"dynamodb": dynamodb_check(aws.dynamodb, names[ROOMS_TABLE.suffix])}
    presence = await _meeting_events(settings, aws, store)
    if presence is not None:

        async def poll() -> None:
            await every(0, presence.poll, name="rooms.meeting_events")

        loops += [poll] * settings.rooms_meeting_events_pollers
        checks["meeting_events"] = _poller_check(
            presence, settings.rooms_meeting_events_wait_seconds + 15.0
        )

    return Component(
        name=SERVICE,
        bus=bus,
        provides=(attendance, Listing(store, clock=clock)),
        subscriptions=wire(
            HANDLERS,
            rooms=store,
            chime=chime,
            clock=clock,
            retention_seconds=settings.rooms_retention_seconds,
        ),
        loops=loops,
        checks=checks,
        on_stop=[attendance.close, outbox.flush],
    )


async def _meeting_events(
    settings: RoomsSettings, aws: AwsClients, store: DynamoRooms
) -> Presence | None:
    """The poller of Chime's meeting events, if a queue is configured or made here."""
    queue = settings.rooms_meeting_events_queue
    if settings.rooms_meeting_events_provision:
        name = queue or f"{settings.table_prefix}-rooms-meeting-events"
        route = await provision(
            aws.sqs,
            aws.events,
            queue_name=name,
            bus_name=settings.rooms_meeting_events_bus,
            max_receive_count=settings.rooms_meeting_events_max_receives,
        )
        url = route.queue_url
    elif queue:
        url = await queue_url(aws.sqs, queue)
    else:
        return None
    # A receive from an empty queue answers only when its wait is over: the wait must
    # end well inside the AWS client's read timeout, or every quiet long poll fails
    # (ReadTimeoutError) and the poller's readiness check with it.
    read_timeout = int(settings.aws_read_timeout_seconds)
    source = SqsMeetingEvents(
        aws.sqs,
        url,
        wait_seconds=min(settings.rooms_meeting_events_wait_seconds, max(1, read_timeout - 2)),
        visibility_seconds=settings.rooms_meeting_events_visibility_seconds,
    )
    return Presence(store, source)


def _poller_check(presence: Presence, within_seconds: float) -> Check:
    """Ready while a receive has answered lately (a long poll answers within its wait)."""

    async def check() -> tuple[bool, Any]:
        return presence.polled_within(within_seconds), {"queue": "meeting-events"}

    return check


definition = ServiceDefinition(
    name=SERVICE,
    title="Belfry rooms",
    description="Active rooms, joining and leaving; find-or-create of Chime meetings.",
    routers=[router],
    settings_type=RoomsSettings,
    build=build,
    aws_services=("dynamodb", "chime-sdk-meetings", "sqs", "events"),
)
