"""The Chime SDK identity and messaging calls chat makes; the only place that
talks to Chime. Throttling and 5xx that outlived the client's retries become
`ServiceUnavailable` (503 + Retry-After)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.budget import BudgetExhausted, chime_busy
from shared.errors import ServiceUnavailable
from shared.logging import get_logger

from ..domain import chime_user_id, request_token
from ..message_view import MessageRefused
from ..metrics import CHIME_SECONDS

if TYPE_CHECKING:
    from types_aiobotocore_chime_sdk_identity import ChimeSDKIdentityClient
    from types_aiobotocore_chime_sdk_messaging import ChimeSDKMessagingClient

log = get_logger("belfry.chat")

_UNAVAILABLE = {
    "ThrottledClientException",
    "ThrottlingException",
    "ServiceUnavailableException",
    "ServiceFailureException",
}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.asynccontextmanager
async def _chime(operation: str, *, expected: tuple[str, ...] = ()) -> AsyncIterator[None]:
    """Time the call; let the `expected` error codes through to the caller and
    turn every other failure into a 503 (the JSON error shape, never a 500)."""
    started = time.perf_counter()
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in expected:
            raise
        if code in _UNAVAILABLE:
            log.warning("chime.unavailable", operation=operation, code=code)
        else:
            log.error("chime.refused", operation=operation, code=code, error=str(exc)[:300])
        raise ServiceUnavailable(
            "the chat backend is unavailable, try again", code="chime_unavailable"
        ) from exc
    except BotoCoreError as exc:
        log.warning("chime.unreachable", operation=operation, error=repr(exc))
        raise ServiceUnavailable(
            "the chat backend is unreachable, try again", code="chime_unavailable"
        ) from exc
    except BudgetExhausted as exc:
        raise chime_busy(exc) from exc
    finally:
        CHIME_SECONDS.labels(operation).observe(time.perf_counter() - started)


def display_name(value: str, fallback: str, limit: int) -> str:
    """Chime names allow printable characters only; ours are for people reading logs."""
    cleaned = re.sub(r"[^\x20-\x7e]", "?", value).strip()[:limit]
    return cleaned or fallback


class ChimeChat:
    """chat's view of Chime: its AppInstance, its service user, users, channels, messages."""

    def __init__(
        self,
        identity: ChimeSDKIdentityClient,
        messaging: ChimeSDKMessagingClient,
        *,
        app_instance_name: str,
        service_user_id: str,
        app_instance_arn: str | None = None,
    ) -> None:
        self._identity = identity
        self._messaging = messaging
        self._name = app_instance_name
        self._service_user_id = service_user_id
        self.app_instance_arn = app_instance_arn or ""
        self.service_user_arn = ""

    async def start(self) -> None:
        """Find or create the AppInstance; make chat's own user an AppInstanceAdmin."""
        if not self.app_instance_arn:
            self.app_instance_arn = await self._find_or_create_app_instance()
        self.service_user_arn = await self._create_user(
            self._service_user_id, "Belfry chat service"
        )
        async with _chime("CreateAppInstanceAdmin"):
            await self._identity.create_app_instance_admin(
                AppInstanceAdminArn=self.service_user_arn, AppInstanceArn=self.app_instance_arn
            )
        log.info(
            "chime.ready", app_instance=self.app_instance_arn, service_user=self.service_user_arn
        )

    async def _find_or_create_app_instance(self) -> str:
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"NextToken": token} if token else {}
            async with _chime("ListAppInstances"):
                page = await self._identity.list_app_instances(MaxResults=50, **extra)
            for summary in page.get("AppInstances", []):
                if summary.get("Name") == self._name and summary.get("AppInstanceArn"):
                    return summary["AppInstanceArn"]
            token = page.get("NextToken")
            if not token:
                break
        async with _chime("CreateAppInstance"):
            created = await self._identity.create_app_instance(
                Name=self._name, ClientRequestToken=request_token("app", self._name)
            )
        log.info("chime.app_instance_created", name=self._name)
        return created["AppInstanceArn"]

    def user_arn(self, user_id: str) -> str:
        return f"{self.app_instance_arn}/user/{chime_user_id(user_id)}"

    async def ensure_user(self, user_id: str) -> str:
        """The AppInstanceUser of a platform user, created if missing (idempotent)."""
        return await self._create_user(chime_user_id(user_id), user_id)

    async def _create_user(self, chime_id: str, name: str) -> str:
        arn = f"{self.app_instance_arn}/user/{chime_id}"
        try:
            async with _chime("CreateAppInstanceUser", expected=("ConflictException",)):
                await self._identity.create_app_instance_user(
                    AppInstanceArn=self.app_instance_arn,
                    AppInstanceUserId=chime_id,
                    Name=display_name(name, chime_id, 100),
                    ClientRequestToken=request_token("user", chime_id),
                )
        except ClientError as exc:
            if error_code(exc) != "ConflictException":  # it exists: what we wanted
                raise
        return arn

    def channel_arn(self, channel_id: str) -> str:
        return f"{self.app_instance_arn}/channel/{channel_id}"

    async def create_channel(self, channel_id: str, name: str, member_arns: Sequence[str]) -> str:
        """A RESTRICTED, PRIVATE channel with a deterministic id; a retry (or a
        channel made by a run that died before recording it) ends with the same
        channel and the wanted members."""
        try:
            async with _chime("CreateChannel", expected=("ConflictException",)):
                created = await self._messaging.create_channel(
                    AppInstanceArn=self.app_instance_arn,
                    Name=display_name(name, channel_id, 256),
                    Mode="RESTRICTED",
                    Privacy="PRIVATE",
                    ChannelId=channel_id,
                    MemberArns=list(member_arns),
                    # a retry with the same members is the same call; another
                    # member list for an existing channel is a conflict, below
                    ClientRequestToken=request_token(
                        "channel", "|".join([channel_id, *sorted(member_arns)])
                    ),
                    ChimeBearer=self.service_user_arn,
                )
            return created["ChannelArn"]
        except ClientError as exc:
            if error_code(exc) != "ConflictException":
                raise
        arn = self.channel_arn(channel_id)
        for member in member_arns:
            await self.add_member(arn, member)
        return arn

    async def add_member(self, channel_arn: str, member_arn: str) -> None:
        async with _chime("CreateChannelMembership"):
            await self._messaging.create_channel_membership(
                ChannelArn=channel_arn,
                MemberArn=member_arn,
                Type="DEFAULT",
                ChimeBearer=self.service_user_arn,
            )

    async def remove_member(self, channel_arn: str, member_arn: str) -> None:
        async with _chime("DeleteChannelMembership"):
            await self._messaging.delete_channel_membership(
                ChannelArn=channel_arn, MemberArn=member_arn, ChimeBearer=self.service_user_arn
            )

    async def send_message(
        self, channel_arn: str, sender_arn: str, content: str, metadata: str, token: str
    ) -> str:
        """Relay as the sender; if Chime says the sender is no member (state that
        drifted), add them and send once more."""
        for attempt in (1, 2):
            try:
                async with _chime("SendChannelMessage", expected=("ForbiddenException",)):
                    sent = await self._messaging.send_channel_message(
                        ChannelArn=channel_arn,
                        Content=content,
                        Type="STANDARD",
                        Persistence="PERSISTENT",
                        Metadata=metadata,
                        ClientRequestToken=token,
                        ChimeBearer=sender_arn,
                    )
                return sent["MessageId"]
            except ClientError as exc:
                if error_code(exc) != "ForbiddenException" or attempt == 2:
                    raise
                log.warning("chime.sender_not_member", channel=channel_arn)
                await self.add_member(channel_arn, sender_arn)
        raise AssertionError("unreachable")

    async def delete_message(self, channel_arn: str, message_id: str) -> None:
        async with _chime("DeleteChannelMessage"):
            await self._messaging.delete_channel_message(
                ChannelArn=channel_arn, MessageId=message_id, ChimeBearer=self.service_user_arn
            )

    async def mark_read(self, channel_arn: str, reader_arn: str) -> None:
        """Chime's read marker of `reader_arn` on the channel: now (it takes no
        message; Belfry's own read state names the message)."""
        async with _chime("UpdateChannelReadMarker"):
            await self._messaging.update_channel_read_marker(
                ChannelArn=channel_arn, ChimeBearer=reader_arn
            )

    async def update_message(
        self, channel_arn: str, sender_arn: str, message_id: str, content: str, metadata: str
    ) -> None:
        """UpdateChannelMessage as the sender (Chime lets only them edit it).
        Chime refusing (the sender no longer a member, the message redacted or
        gone) is `MessageRefused`."""
        try:
            async with _chime("UpdateChannelMessage", expected=_REFUSALS):
                await self._messaging.update_channel_message(
                    ChannelArn=channel_arn,
                    MessageId=message_id,
                    Content=content,
                    Metadata=metadata,
                    ChimeBearer=sender_arn,
                )
        except ClientError as exc:
            raise MessageRefused(error_code(exc)) from exc

    async def redact_message(self, channel_arn: str, message_id: str) -> None:
        """RedactChannelMessage as chat's service user (an AppInstanceAdmin may
        redact any message); a message Chime no longer has is redacted enough."""
        try:
            async with _chime("RedactChannelMessage", expected=("NotFoundException",)):
                await self._messaging.redact_channel_message(
                    ChannelArn=channel_arn, MessageId=message_id, ChimeBearer=self.service_user_arn
                )
        except ClientError:
            log.warning("chime.redact_missing", channel=channel_arn, message_id=message_id)


_REFUSALS = ("ForbiddenException", "BadRequestException", "NotFoundException", "ConflictException")
