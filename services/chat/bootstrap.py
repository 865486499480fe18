"""The composition root: tables, the AppInstance and chat's user, the bucket,
the outbox relay and the membership consumer. No I/O at import."""

from __future__ import annotations

from shared.aws import AwsClients
from shared.bus import EventBus
from shared.dynamo import ensure_tables
from shared.inbox import INBOX_TABLE, Inbox
from shared.outbox import OUTBOX_TABLE, Outbox
from shared.runtime import Component, dynamodb_check
from shared.service import ServiceDefinition
from shared.store import Store

from .adapters.chime import ChimeChat
from .adapters.dynamo import CHANNELS, TABLES, ChatTables
from .adapters.s3 import AttachmentBucket
from .api import router
from .handlers import subscriptions
from .service import ChatService
from .settings import ChatSettings

NAME = "chat"
SHARED_TABLES = (INBOX_TABLE, OUTBOX_TABLE)


async def build(settings: ChatSettings, aws: AwsClients, bus: EventBus) -> Component:
    names = await ensure_tables(
        aws.dynamodb, settings.table_prefix, NAME, [*TABLES, *SHARED_TABLES]
    )
    outbox = Outbox(aws.dynamodb, names[OUTBOX_TABLE.suffix], bus)
    store = Store(aws.dynamodb, inbox=Inbox(aws.dynamodb, names[INBOX_TABLE.suffix]), outbox=outbox)
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
    chat = ChatService(
        settings=settings,
        tables=ChatTables(aws.dynamodb, names),
        chime=chime,
        bucket=bucket,
        store=store,
    )
    return Component(
        name=NAME,
        bus=bus,
        state=chat,
        subscriptions=subscriptions(chat),
        loops=[outbox.run_relay, chat.run_sweeper],
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
