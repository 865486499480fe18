"""Chime SDK calls of the notifier: its own AppInstanceAdmin user, and
BatchCreateChannelMembership for lazy joins."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from shared.budget import BudgetExhausted
from shared.logging import get_logger

from ..domain import app_instance_of, user_arn
from ..ports import ChimeRejected, ChimeUnavailable

if TYPE_CHECKING:
    from types_aiobotocore_chime_sdk_identity import ChimeSDKIdentityClient
    from types_aiobotocore_chime_sdk_messaging import ChimeSDKMessagingClient

log = get_logger("belfry.notifier")

MAX_BATCH = 100  # BatchCreateChannelMembership's MemberArns limit


_TRANSIENT = {
    "ThrottledClientException",
    "ThrottlingException",
    "ServiceUnavailableException",
    "ServiceFailureException",
}


def _failure(what: str, exc: ClientError | BotoCoreError | BudgetExhausted) -> Exception:
    if isinstance(exc, ClientError) and exc.response["Error"]["Code"] not in _TRANSIENT:
        return ChimeRejected(f"{what}: {exc}")
    return ChimeUnavailable(f"{what}: {exc}")


class ChimeMemberships:
    def __init__(
        self,
        messaging: ChimeSDKMessagingClient,
        identity: ChimeSDKIdentityClient,
        *,
        service_user_id: str,
    ) -> None:
        self._messaging = messaging
        self._identity = identity
        self._service_user_id = service_user_id
        self._bearers: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def bearer(self, app_instance_arn: str) -> str:
        """The notifier's AppInstanceUser in this AppInstance, made an admin once
        per process (both calls are idempotent)."""
        known = self._bearers.get(app_instance_arn)
        if known is not None:
            return known
        async with self._lock:
            if app_instance_arn in self._bearers:
                return self._bearers[app_instance_arn]
            arn = user_arn(app_instance_arn, self._service_user_id)
            try:
                try:
                    await self._identity.create_app_instance_user(
                        AppInstanceArn=app_instance_arn,
                        AppInstanceUserId=self._service_user_id,
                        Name="Belfry notifier",
                        ClientRequestToken=self._service_user_id,
                    )
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ConflictException":
                        raise
                await self._identity.create_app_instance_admin(
                    AppInstanceAdminArn=arn, AppInstanceArn=app_instance_arn
                )
            except (ClientError, BotoCoreError, BudgetExhausted) as exc:
                raise _failure("cannot prepare the service user", exc) from exc
            log.info("chime.service_user_ready", app_instance_arn=app_instance_arn)
            self._bearers[app_instance_arn] = arn
            return arn

    async def add_members(self, channel_arn: str, member_arns: list[str]) -> dict[str, str | None]:
        """Add AppInstanceUsers to a channel in one call (already a member counts
        as added): member ARN -> None when in, or Chime's error code for it."""
        if not member_arns or len(member_arns) > MAX_BATCH:
            raise ValueError(f"1..{MAX_BATCH} members per call, not {len(member_arns)}")
        bearer = await self.bearer(app_instance_of(channel_arn))
        try:
            response = await self._messaging.batch_create_channel_membership(
                ChannelArn=channel_arn,
                MemberArns=member_arns,
                Type="DEFAULT",
                ChimeBearer=bearer,
            )
        except (ClientError, BotoCoreError, BudgetExhausted) as exc:
            raise _failure("BatchCreateChannelMembership", exc) from exc
        result: dict[str, str | None] = dict.fromkeys(member_arns)
        for error in response.get("Errors", []):
            arn = error.get("MemberArn", "")
            if arn in result:
                result[arn] = error.get("ErrorCode") or "Unknown"
        log.info(
            "chime.members_added",
            channel_arn=channel_arn,
            members=len(member_arns),
            failed=sum(1 for v in result.values() if v),
        )
        return result
