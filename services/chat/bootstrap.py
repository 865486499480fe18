"""The composition root: tables, the AppInstance and chat's user, the bucket,
the use cases, the outbox relay, the sweeper and the membership consumer.
No I/O at import."""

from __future__ import annotations

import time
from dataclasses import dataclass

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

from .adapters.chime import ChimeChat
from .adapters.dynamo import CHANNELS, TABLES, DynamoChat
from .adapters.s3 import AttachmentBucket
from .api import router
from .assignments import Assignments
from .attachments import Attachments
from .channels import Channels
from .handlers import HANDLERS
from .messages import Messages
from .people import People
from .ports import AttachmentStore, ChatChime, ChatStore
from .settings import ChatSettings

NAME = "chat"
SHARED_TABLES = (INBOX_TABLE, OUTBOX_TABLE)


@dataclass(frozen=True)
class UseCases:
    """What the routes and the handlers depend on."""

    people: People
    channels: Channels
    assignments: Assignments
    messages: Messages
    attachments: Attachments


def use_cases(
    store: ChatStore,
    chime: ChatChime,
    bucket: AttachmentStore,
    settings: ChatSettings,
    *,
    clock: Clock = time.time,
) -> UseCases:
    """The use cases over their ports (no I/O: unit tests call this with fakes)."""
    people = People(store, chime)
    channels = Channels(store, chime, people, page_size=settings.chat_page_size, clock=clock)
    attachments = Attachments(store, bucket, channels, settings, clock=clock)
    messages = Messages(
        store,
        chime,
        people=people,
        channels=channels,
        attachments=attachments,
        settings=settings,
        clock=clock,
    )
    assignments = Assignments(store, chime, people, clock=clock)
    return UseCases(people, channels, assignments, messages, attachments)


@dataclass(frozen=True)
class Chat:
    """chat, wired (tests drive its parts directly)."""

    use_cases: UseCases
    chime: ChimeChat
    inbox: Inbox


async def build(
    settings: ChatSettings, aws: AwsClients, bus: EventBus, *, clock: Clock = time.time
) -> Component:
    names = await ensure_tables(
        aws.dynamodb, settings.table_prefix, NAME, [*TABLES, *SHARED_TABLES]
    )
    outbox = Outbox(aws.dynamodb, names[OUTBOX_TABLE.suffix], bus)
    inbox = Inbox(aws.dynamodb, names[INBOX_TABLE.suffix])
    store = DynamoChat(aws.dynamodb, Store(aws.dynamodb, inbox=inbox, outbox=outbox), names)
    chime = ChimeChat(
        aws.chime_identity,
        aws.chime_messaging,
        app_instance_name=settings.chat_app_instance_name,
        service_user_id=settings.chat_service_user_id,
        app_instance_arn=settings.chat_app_instance_arn,
    )
    await chime.start()
    bucket = AttachmentBucket(aws.s3, settings.chat_attachments_bucket, settings.aws_region)
    await bucket.ensure()
    cases = use_cases(store, chime, bucket, settings, clock=clock)
    chat = Chat(cases, chime, inbox)
    return Component(
        name=NAME,
        bus=bus,
        provides=(chat, *vars(cases).values()),
        subscriptions=wire(HANDLERS, channels=cases.channels),
        loops=[outbox.run_relay, cases.attachments.run_sweeper],
        checks={"dynamodb": dynamodb_check(aws.dynamodb, names[CHANNELS.suffix])},
        on_stop=[outbox.flush],
    )


definition = ServiceDefinition(
    name=NAME,
    title="Belfry chat",
    description="Customer/manager chat on Chime SDK messaging: channels, messages, "
    "mentions and attachments.",
    routers=[router],
    settings_type=ChatSettings,
    build=build,
    aws_services=("dynamodb", "s3", "chime-sdk-identity", "chime-sdk-messaging"),
)
