"""The composition root of rooms: tables, Chime gateway, joins, event handlers."""

from __future__ import annotations

from services.rooms.adapters.chime import ChimeMeetingGateway
from services.rooms.adapters.dynamo import TABLES, RoomTables
from services.rooms.api import SERVICE, router
from services.rooms.handlers import RoomEvents
from services.rooms.joins import JoinPolicy, Joins
from services.rooms.settings import RoomsSettings
from shared.aws import AwsClients
from shared.bus import EventBus
from shared.dynamo import ensure_tables
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.runtime import Component, dynamodb_check
from shared.service import ServiceDefinition
from shared.store import Store

SPECS = (*TABLES, INBOX_TABLE, OUTBOX_TABLE)


async def build(settings: RoomsSettings, aws: AwsClients, bus: EventBus) -> Component:
    names = await ensure_tables(aws.dynamodb, settings.table_prefix, SERVICE, SPECS)
    tables = RoomTables(aws.dynamodb, names)
    outbox = Outbox(aws.dynamodb, names[OUTBOX_TABLE.suffix], bus)
    inbox = Inbox(
        aws.dynamodb, names[INBOX_TABLE.suffix], retention_seconds=settings.rooms_retention_seconds
    )
    store = Store(aws.dynamodb, inbox=inbox, outbox=outbox)
    chime = ChimeMeetingGateway(aws.chime_meetings)
    joins = Joins(
        tables,
        store,
        chime,
        JoinPolicy(
            meeting_wait_seconds=settings.rooms_meeting_wait_seconds,
            lease_seconds=settings.rooms_meeting_lease_seconds,
            retention_seconds=settings.rooms_retention_seconds,
        ),
    )
    events = RoomEvents(tables, store, chime, retention_seconds=settings.rooms_retention_seconds)
    interval = settings.rooms_outbox_relay_seconds

    async def relay() -> None:
        await outbox.run_relay(interval)

    return Component(
        name=SERVICE,
        bus=bus,
        state=joins,
        subscriptions=events.subscriptions(),
        loops=[relay],
        checks={"dynamodb": dynamodb_check(aws.dynamodb, tables.rooms)},
        on_stop=[outbox.flush],
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
