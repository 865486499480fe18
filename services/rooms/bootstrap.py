"""The composition root of rooms: tables, store, Chime gateway, use cases,
event handlers. No I/O at import."""

from __future__ import annotations

import time

from shared.aws import AwsClients
from shared.bus import EventBus
from shared.clock import Clock
from shared.dynamo import ensure_tables
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.runtime import Component, dynamodb_check
from shared.service import ServiceDefinition
from shared.store import Store
from shared.topology import wire

from .adapters.chime import ChimeMeetingGateway
from .adapters.dynamo import DynamoRooms
from .adapters.rows import ROOMS_TABLE, TABLES
from .api import SERVICE, router
from .attendance import Attendance
from .handlers import HANDLERS
from .listing import Listing
from .meetings import Meetings
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
        loops=[relay],
        checks={"dynamodb": dynamodb_check(aws.dynamodb, names[ROOMS_TABLE.suffix])},
        on_stop=[attendance.close, outbox.flush],
    )


definition = ServiceDefinition(
    name=SERVICE,
    title="Belfry rooms",
    description="Active rooms, joining and leaving; find-or-create of Chime meetings.",
    routers=[router],
    settings_type=RoomsSettings,
    build=build,
    aws_services=("dynamodb", "chime-sdk-meetings"),
)
