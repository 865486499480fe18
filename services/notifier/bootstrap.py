"""The notifier's composition root: tables, Chime, handlers, subscriptions."""

from __future__ import annotations

from services.notifier.adapters.chime import ChimeMemberships
from services.notifier.adapters.dynamo import (
    FEED_TABLE,
    MEMBERS_TABLE,
    MENTIONS_TABLE,
    DynamoFeed,
    DynamoMembers,
    DynamoMentions,
)
from services.notifier.api import router
from services.notifier.handlers import (
    FanoutHandler,
    FeedHandler,
    MentionHandler,
    ReceiptWatcher,
)
from services.notifier.joins import JoinBatcher
from services.notifier.live import Hub
from services.notifier.settings import NotifierSettings
from services.notifier.state import Notifier
from shared.aws import AwsClients
from shared.bus import EventBus, Subscription
from shared.dynamo import ensure_tables
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.runtime import Component, dynamodb_check
from shared.service import ServiceDefinition
from shared.store import Store
from shared.topology import QUEUES, subscription

NAME = "notifier"
FANOUT_QUEUE = "notifier.fanout"  # per replica: notifier.fanout.<instance id>


async def build(settings: NotifierSettings, aws: AwsClients, bus: EventBus) -> Component:
    tables = await ensure_tables(
        aws.dynamodb,
        settings.table_prefix,
        NAME,
        [FEED_TABLE, MENTIONS_TABLE, MEMBERS_TABLE, INBOX_TABLE, OUTBOX_TABLE],
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
    mentions = DynamoMentions(aws.dynamodb, tables["mentions"])
    inbox = Inbox(aws.dynamodb, tables["inbox"])
    outbox = Outbox(aws.dynamodb, tables["outbox"], bus)
    chime = ChimeMemberships(
        aws.chime_messaging, aws.chime_identity, service_user_id=settings.notifier_service_user_id
    )
    joiner = JoinBatcher(chime.add_members, window_seconds=settings.notifier_join_window_seconds)
    on_mention = MentionHandler(
        claims=inbox,
        store=Store(aws.dynamodb, outbox=outbox),
        members=members,
        mentions=mentions,
        joiner=joiner,
    )
    on_feed = FeedHandler(feed=feed, members=members)
    watcher = ReceiptWatcher(feed=feed, hub=hub)
    on_fanout = FanoutHandler(watcher=watcher, hub=hub)

    async def prepare_service_user() -> None:
        if settings.notifier_app_instance_arn:
            await chime.bearer(settings.notifier_app_instance_arn)

    return Component(
        name=NAME,
        bus=bus,
        state=Notifier(settings=settings, feed=feed, mentions=mentions, members=members, hub=hub),
        subscriptions=[
            subscription("notifier.mentions", on_mention),
            subscription("notifier.feed", on_feed),
            Subscription(FANOUT_QUEUE, QUEUES["notifier.feed"], on_fanout, fanout=True),
        ],
        loops=[feed.run, watcher.run, outbox.run_relay, prepare_service_user],
        checks={"dynamodb": dynamodb_check(aws.dynamodb, tables["feed"])},
        on_stop=[hub.close_all, joiner.close, outbox.flush],
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
