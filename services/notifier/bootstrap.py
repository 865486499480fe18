"""The notifier's composition root: tables, Chime, the feed writer, handlers,
subscriptions. No I/O at import."""

from __future__ import annotations

from shared.aws import AwsClients
from shared.bus import EventBus
from shared.dynamo import ensure_tables
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.runtime import Component, dynamodb_check
from shared.service import ServiceDefinition
from shared.store import Store
from shared.topology import wire

from .adapters.chime import ChimeMemberships
from .adapters.feed import FEED_TABLE, DynamoFeed
from .adapters.members import MEMBERS_TABLE, DynamoMembers
from .adapters.mentions import MENTIONS_TABLE, DynamoMentions
from .adapters.sessions import SESSIONS_TABLE, DynamoSessionLeases, MemorySessionLeases
from .api import router
from .board import RoomBoard
from .fanout import ReceiptWatcher, RoomBroadcaster
from .handlers import HANDLERS
from .joins import JoinBatcher
from .live import Hub
from .settings import NotifierSettings
from .state import Notifier
from .typing_relay import TypingRelay

NAME = "notifier"


async def build(settings: NotifierSettings, aws: AwsClients, bus: EventBus) -> Component:
    tables = await ensure_tables(
        aws.dynamodb,
        settings.table_prefix,
        NAME,
        [FEED_TABLE, MENTIONS_TABLE, MEMBERS_TABLE, SESSIONS_TABLE, INBOX_TABLE, OUTBOX_TABLE],
    )
    hub = Hub()
    feed = DynamoFeed(
        aws.dynamodb,
        tables["feed"],
        retention_seconds=settings.notifier_feed_retention_seconds,
        on_written=hub.deliver,
    )
    members = DynamoMembers(
        aws.dynamodb, tables["members"], cache_seconds=settings.notifier_members_cache_seconds
    )
    inbox = Inbox(aws.dynamodb, tables["inbox"])
    outbox = Outbox(aws.dynamodb, tables["outbox"], bus)
    mentions = DynamoMentions(
        aws.dynamodb,
        tables["mentions"],
        store=Store(aws.dynamodb, outbox=outbox),
        inbox=inbox,
        members=members,
    )
    chime = ChimeMemberships(
        aws.chime_messaging, aws.chime_identity, service_user_id=settings.notifier_service_user_id
    )
    joiner = JoinBatcher(chime.add_members, window_seconds=settings.notifier_join_window_seconds)
    watcher = ReceiptWatcher(feed=feed, hub=hub)
    # The in-process bus is one process by definition: its sessions count in memory.
    leases = (
        MemorySessionLeases()
        if settings.amqp_url.startswith("memory://")
        else DynamoSessionLeases(aws.dynamodb, tables["sessions"])
    )
    board = RoomBoard(interval_seconds=settings.notifier_room_frame_interval_seconds)
    rooms = RoomBroadcaster(board=board, hub=hub)
    typing = TypingRelay(
        members=members,
        publish=lambda envelope: bus.publish_transient(envelope, ttl_seconds=5.0),
        sessions=hub,
        interval_seconds=settings.notifier_typing_interval_seconds,
    )

    async def prepare_service_user() -> None:
        if settings.notifier_app_instance_arn:
            await chime.bearer(settings.notifier_app_instance_arn)

    return Component(
        name=NAME,
        bus=bus,
        provides=(
            Notifier(
                settings=settings,
                feed=feed,
                mentions=mentions,
                hub=hub,
                leases=leases,
                typing=typing,
            ),
        ),
        subscriptions=wire(
            HANDLERS,
            claims=inbox,
            members=members,
            mentions=mentions,
            joiner=joiner,
            feed=feed,
            watcher=watcher,
            hub=hub,
            rooms=rooms,
            typing=typing,
        ),
        loops=[feed.run, watcher.run, rooms.run, outbox.run_relay, prepare_service_user],
        checks={"dynamodb": dynamodb_check(aws.dynamodb, tables["feed"])},
        on_stop=[hub.close_all, typing.close, joiner.close, outbox.flush],
    )


definition = ServiceDefinition(
    name=NAME,
    title="Belfry notifier",
    description=(
        "Lazy channel joins on mentions, the mention inbox, and a resumable "
        "WebSocket feed of messages, mentions and joins."
    ),
    routers=[router],
    settings_type=NotifierSettings,
    build=build,
    aws_services=("dynamodb", "chime-sdk-identity", "chime-sdk-messaging"),
)
