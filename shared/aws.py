"""AWS clients: aiobotocore, created once per process, endpoints from settings.

One `AwsClients` is opened in the composition root and handed to adapters.
Retries use botocore's `standard` mode (5xx, meetings' ThrottlingException)
plus a handler for Chime messaging/identity's `ThrottledClientException`,
which botocore does not treat as retryable (a 429 not modelled as such).
"""

from __future__ import annotations

import os
import random
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from shared import tracing
from shared.logging import get_logger
from shared.metrics import Counter
from shared.settings import BelfrySettings

if TYPE_CHECKING:
    from types_aiobotocore_chime_sdk_identity import ChimeSDKIdentityClient
    from types_aiobotocore_chime_sdk_meetings import ChimeSDKMeetingsClient
    from types_aiobotocore_chime_sdk_messaging import ChimeSDKMessagingClient
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_events import EventBridgeClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

log = get_logger("belfry.aws")

ServiceName = Literal[
    "dynamodb",
    "s3",
    "sqs",
    "events",
    "chime-sdk-identity",
    "chime-sdk-meetings",
    "chime-sdk-messaging",
]
ALL_SERVICES: tuple[ServiceName, ...] = (
    "dynamodb",
    "s3",
    "sqs",
    "events",
    "chime-sdk-identity",
    "chime-sdk-meetings",
    "chime-sdk-messaging",
)
CHIME_THROTTLED = "ThrottledClientException"
THROTTLE_RETRIES = Counter(
    "belfry_aws_throttle_retries_total",
    "Chime ThrottledClientException answers retried by the client.",
    ["aws_service"],
)


def throttle_retry_handler(
    service: str, max_attempts: int, base_delay: float = 0.1, max_delay: float = 5.0
) -> Any:
    """A `needs-retry` handler: jittered exponential back-off (full jitter) on
    ThrottledClientException; `None` leaves every other answer to botocore."""

    def needs_retry(response: Any = None, attempts: int = 1, **_: Any) -> float | None:
        if response is None or attempts >= max_attempts:
            return None
        code = response[1].get("Error", {}).get("Code")
        if code != CHIME_THROTTLED:
            return None
        THROTTLE_RETRIES.labels(service).inc()
        return random.uniform(0, min(max_delay, base_delay * 2**attempts))

    return needs_retry


def local_credentials(endpoint: str | None) -> dict[str, str]:
    """Against local stand-ins (an endpoint set that is not AWS's own, no
    credentials configured) any key works; on AWS (or with credentials)
    botocore's default chain is used."""
    host = (urlsplit(endpoint).hostname or "") if endpoint else ""
    if (
        endpoint
        and not host.endswith("amazonaws.com")
        and not os.environ.get("AWS_ACCESS_KEY_ID")
        and not os.environ.get("AWS_PROFILE")
    ):
        return {"aws_access_key_id": "belfry-local", "aws_secret_access_key": "belfry-local"}
    return {}


class AwsClients:
    """`async with AwsClients(settings, services=(...)) as aws: aws.dynamodb...`"""

    def __init__(
        self, settings: BelfrySettings, services: tuple[ServiceName, ...] = ALL_SERVICES
    ) -> None:
        self._settings = settings
        self._services = services
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}

    def _config(self) -> AioConfig:
        s = self._settings
        return AioConfig(
            retries={"mode": "standard", "max_attempts": s.aws_max_attempts},
            # The calls are built by typed adapters and the services validate
            # them again; botocore's client-side pass cost ~7 % of a join's CPU.
            parameter_validation=False,
            max_pool_connections=s.aws_max_pool_connections,
            connect_timeout=s.aws_connect_timeout_seconds,
            read_timeout=s.aws_read_timeout_seconds,
        )

    async def __aenter__(self) -> AwsClients:
        session = get_session()
        s = self._settings
        for name in self._services:
            endpoint = s.chime_endpoint_url if name.startswith("chime") else s.aws_endpoint_url
            client = await self._stack.enter_async_context(
                session.create_client(  # type: ignore[call-overload]
                    name,
                    region_name=s.aws_region,
                    endpoint_url=endpoint,
                    config=self._config(),
                    **local_credentials(endpoint),
                )
            )
            if name in ("chime-sdk-messaging", "chime-sdk-identity"):
                client.meta.events.register_first(
                    f"needs-retry.{name}", throttle_retry_handler(name, s.aws_max_attempts)
                )
            tracing.instrument_aws(client)  # CLIENT spans, when tracing is on
            self._clients[name] = client
        log.info("aws.clients_ready", services=list(self._services))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()
        self._clients.clear()

    @property
    def opened(self) -> tuple[ServiceName, ...]:
        return self._services

    def client(self, name: ServiceName) -> Any:
        return self._get(name)

    def _get(self, name: str) -> Any:
        try:
            return self._clients[name]
        except KeyError:
            raise RuntimeError(f"AWS client {name} was not opened") from None

    @property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self._get("dynamodb")
        return client

    @property
    def s3(self) -> S3Client:
        client: S3Client = self._get("s3")
        return client

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self._get("sqs")
        return client

    @property
    def events(self) -> EventBridgeClient:
        client: EventBridgeClient = self._get("events")
        return client

    @property
    def chime_identity(self) -> ChimeSDKIdentityClient:
        client: ChimeSDKIdentityClient = self._get("chime-sdk-identity")
        return client

    @property
    def chime_meetings(self) -> ChimeSDKMeetingsClient:
        client: ChimeSDKMeetingsClient = self._get("chime-sdk-meetings")
        return client

    @property
    def chime_messaging(self) -> ChimeSDKMessagingClient:
        client: ChimeSDKMessagingClient = self._get("chime-sdk-messaging")
        return client
