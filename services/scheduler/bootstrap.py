"""The scheduler's composition root: tables, store, use cases, activation loop."""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.aws import AwsClients
from shared.bus import EventBus, instance_id
from shared.clock import Clock
from shared.dynamo import ensure_tables
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.runtime import Component, dynamodb_check
from shared.service import ServiceDefinition
from shared.store import Store

from .activation import Activator
from .adapters.dynamo import LEASES_TABLE, ROOMS_TABLE, TITLES_TABLE, DynamoSchedule
from .api import SERVICE, router
from .domain import Rules
from .schedule import Schedule
from .settings import SchedulerSettings

TABLES = (ROOMS_TABLE, TITLES_TABLE, LEASES_TABLE, OUTBOX_TABLE)


@dataclass(frozen=True)
class Scheduler:
    """The scheduler, wired (tests and benchmarks drive its parts directly)."""

    schedule: Schedule
    activator: Activator
    store: DynamoSchedule
    outbox: Outbox


async def build(
    settings: SchedulerSettings,
    aws: AwsClients,
    bus: EventBus,
    *,
    clock: Clock = time.time,
) -> Component:
    """`clock` is for tests, which move time instead of waiting for it."""
    tables = await ensure_tables(aws.dynamodb, settings.table_prefix, SERVICE, TABLES)
    outbox = Outbox(aws.dynamodb, tables["outbox"], bus)
    store = DynamoSchedule(
        aws.dynamodb,
        Store(aws.dynamodb, outbox=outbox),
        rooms_table=tables["rooms"],
        titles_table=tables["titles"],
        leases_table=tables["leases"],
        retention_seconds=settings.scheduler_retention_seconds,
    )
    rules = Rules(
        start_grace_seconds=settings.scheduler_start_grace_seconds,
        max_lead_seconds=settings.scheduler_max_lead_days * 86400,
    )
    activator = Activator(
        store,
        clock=clock,
        tick_seconds=settings.scheduler_tick_seconds,
        due_per_tick=settings.scheduler_due_per_tick,
        rooms_per_transaction=settings.scheduler_rooms_per_transaction,
        concurrent_transactions=settings.scheduler_concurrent_transactions,
        owner=instance_id(settings),
        lease_seconds=settings.scheduler_lease_seconds,
        lookahead_seconds=settings.scheduler_lookahead_seconds,
    )
    state = Scheduler(
        schedule=Schedule(store, clock=clock, rules=rules, page_size=settings.scheduler_page_size),
        activator=activator,
        store=store,
        outbox=outbox,
    )

    async def relay() -> None:
        await outbox.run_relay(settings.scheduler_outbox_relay_seconds)

    return Component(
        name=SERVICE,
        bus=bus,
        provides=(state.schedule, state),
        loops=[activator.run, relay],
        checks={
            "dynamodb": dynamodb_check(aws.dynamodb, tables["rooms"]),
            "activation": activator.check,
        },
        on_stop=[outbox.flush],
    )


definition = ServiceDefinition(
    name=SERVICE,
    title="Belfry scheduler",
    description="Schedules rooms and announces when they start and end.",
    routers=[router],
    settings_type=SchedulerSettings,
    build=build,
    aws_services=("dynamodb",),
)
