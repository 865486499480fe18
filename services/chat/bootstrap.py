"""The composition root: tables, the AppInstance and chat's user, the bucket,
the identity provider (the Cognito user pool in cognito mode), the use cases,
the outbox relay, the sweepers and the membership consumer. No I/O at import."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from shared.auth.config import cognito_region_of
from shared.aws import AwsClients, local_credentials
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
from .adapters.cognito import CognitoDirectory
from .adapters.dynamo import CHANNELS, TABLES, DynamoChat
from .adapters.reading import READ_TABLES
from .adapters.s3 import AttachmentBucket
from .api import router
from .api_edits import router as edits_router
from .api_reading import router as reading_router
from .assignments import Assignments
from .attachments import Attachments
from .channels import Channels
from .edits import Edits
from .handlers import HANDLERS
from .messages import Messages
from .people import People
from .ports import AttachmentStore, ChatChime, ChatStore, Directory, ReadStore
from .reading import Reading
from .roles import RecordedRoles, RoleChanges
from .settings import ChatSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

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
    roles: RoleChanges
    edits: Edits
    reading: Reading | None = None  # with the read-state tables (adapters/reading.py)


def use_cases(
    store: ChatStore,
    chime: ChatChime,
    bucket: AttachmentStore,
    settings: ChatSettings,
    *,
    directory: Directory | None = None,
    clock: Clock = time.time,
    reads: ReadStore | None = None,
) -> UseCases:
    """The use cases over their ports (no I/O: unit tests call this with fakes).
    Without a `directory` (no user pool), roles are the ones chat recorded from
    people's own tokens (`RecordedRoles`)."""
    roles = RoleChanges(
        store,
        chime,
        directory or RecordedRoles(store),
        sweep_interval_seconds=settings.chat_role_sweep_interval_seconds,
        clock=clock,
    )
    people = People(store, chime, roles)
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
        reads=reads,
    )
    assignments = Assignments(store, chime, people, roles, clock=clock)
    edits = Edits(
        store,
        chime,
        people=people,
        channels=channels,
        attachments=attachments,
        settings=settings,
        clock=clock,
    )
    reading = (
        Reading(store, reads, chime, channels, page_size=settings.chat_page_size, clock=clock)
        if reads is not None
        else None
    )
    return UseCases(people, channels, assignments, messages, attachments, roles, edits, reading)


async def open_directory(settings: ChatSettings, stack: AsyncExitStack) -> Directory | None:
    """The Cognito user pool as chat's `Directory` in cognito mode (a
    `cognito-idp` client kept for the process, closed on stop); None otherwise.
    Its endpoint: `BELFRY_COGNITO_ENDPOINT_URL`, else `BELFRY_AWS_ENDPOINT_URL`
    (the moto server of `make run` holds the pool), else Cognito's own."""
    pool = settings.cognito_user_pool_id
    if settings.auth_mode != "cognito" or not pool:
        return None
    endpoint = settings.cognito_endpoint_url or settings.aws_endpoint_url
    client = await stack.enter_async_context(
        get_session().create_client(  # type: ignore[call-overload]
            "cognito-idp",
            region_name=cognito_region_of(settings) or settings.aws_region,
            endpoint_url=endpoint,
            config=AioConfig(
                retries={"mode": "standard", "max_attempts": settings.aws_max_attempts},
                connect_timeout=settings.aws_connect_timeout_seconds,
                read_timeout=settings.aws_read_timeout_seconds,
            ),
            **local_credentials(endpoint),
        )
    )
    return CognitoDirectory(client, pool, cache_seconds=settings.chat_role_cache_seconds)


async def open_presigner(settings: ChatSettings, stack: AsyncExitStack) -> S3Client | None:
    """An S3 client of `BELFRY_CHAT_S3_PUBLIC_ENDPOINT_URL` that only signs (no
    request is sent with it), with the credentials of chat's own S3 client (the
    ones the server checks the signatures against); None when it is unset."""
    endpoint = settings.chat_s3_public_endpoint_url
    if not endpoint:
        return None
    client: S3Client = await stack.enter_async_context(
        get_session().create_client(  # type: ignore[call-overload]
            "s3",
            region_name=settings.aws_region,
            endpoint_url=endpoint,
            **local_credentials(settings.aws_endpoint_url),
        )
    )
    return client


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
        aws.dynamodb, settings.table_prefix, NAME, [*TABLES, *READ_TABLES, *SHARED_TABLES]
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
    stack = AsyncExitStack()
    bucket = AttachmentBucket(
        aws.s3,
        settings.chat_attachments_bucket,
        settings.aws_region,
        presigner=await open_presigner(settings, stack),
    )
    try:
        await bucket.ensure()
    except BaseException:
        await stack.aclose()
        raise
    directory = await open_directory(settings, stack)
    cases = use_cases(
        store, chime, bucket, settings, directory=directory, clock=clock, reads=store.reads
    )
    chat = Chat(cases, chime, inbox)
    loops = [outbox.run_relay, cases.attachments.run_sweeper]
    if directory is not None:  # without a pool there is nothing to re-check against
        loops.append(cases.roles.run_sweeper)
    return Component(
        name=NAME,
        bus=bus,
        provides=(chat, *(case for case in vars(cases).values() if case is not None)),
        subscriptions=wire(HANDLERS, channels=cases.channels, roles=cases.roles),
        loops=loops,
        checks={"dynamodb": dynamodb_check(aws.dynamodb, names[CHANNELS.suffix])},
        on_stop=[outbox.flush, stack.aclose],
    )


definition = ServiceDefinition(
    name=NAME,
    title="Belfry chat",
    description="Customer/manager chat on Chime SDK messaging: channels, messages, "
    "mentions and attachments.",
    routers=[router, edits_router, reading_router],
    settings_type=ChatSettings,
    build=build,
    aws_services=("dynamodb", "s3", "chime-sdk-identity", "chime-sdk-messaging"),
)
