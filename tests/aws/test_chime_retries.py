"""The AWS clients retry Chime's throttling, which botocore alone does not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from emulators.chime.control import EmulatorControl
from shared.aws import AwsClients
from shared.settings import BelfrySettings


@pytest.fixture
def chime_settings(
    make_settings: Callable[..., BelfrySettings], chime_url: str
) -> Callable[..., BelfrySettings]:
    def factory(**overrides: object) -> BelfrySettings:
        return make_settings(chime_endpoint_url=chime_url, **overrides)

    return factory


async def _app_instance_user(aws: AwsClients) -> str:
    instance = await aws.chime_identity.create_app_instance(
        Name="retry-test", ClientRequestToken="t1"
    )
    user = await aws.chime_identity.create_app_instance_user(
        AppInstanceArn=instance["AppInstanceArn"],
        AppInstanceUserId="u1",
        Name="u1",
        ClientRequestToken="t2",
    )
    return user["AppInstanceUserArn"]


async def test_throttled_messaging_calls_are_retried_until_they_pass(
    chime: EmulatorControl, chime_settings
) -> None:
    async with AwsClients(
        chime_settings(aws_max_attempts=8), services=("chime-sdk-identity", "chime-sdk-messaging")
    ) as aws:
        bearer = await _app_instance_user(aws)
        await chime.set_limits(
            operations={"ListChannelMembershipsForAppInstanceUser": {"rate": 20, "burst": 2}}
        )
        for _ in range(6):  # 3x the burst: without retries some would fail
            await aws.chime_messaging.list_channel_memberships_for_app_instance_user(
                AppInstanceUserArn=bearer, ChimeBearer=bearer
            )
        counters = await chime.counters()
    throttled = counters["throttled"].get("ListChannelMembershipsForAppInstanceUser", 0)
    assert throttled > 0  # the emulator did throttle, and the client rode it out
    assert counters["succeeded"]["ListChannelMembershipsForAppInstanceUser"] == 6


async def test_retries_are_bounded(chime: EmulatorControl, chime_settings) -> None:
    async with AwsClients(
        chime_settings(aws_max_attempts=2), services=("chime-sdk-identity", "chime-sdk-messaging")
    ) as aws:
        bearer = await _app_instance_user(aws)
        await chime.set_limits(
            operations={"ListChannelMembershipsForAppInstanceUser": {"rate": 0.01, "burst": 1}}
        )
        await aws.chime_messaging.list_channel_memberships_for_app_instance_user(
            AppInstanceUserArn=bearer, ChimeBearer=bearer
        )
        with pytest.raises(ClientError) as throttled:
            await aws.chime_messaging.list_channel_memberships_for_app_instance_user(
                AppInstanceUserArn=bearer, ChimeBearer=bearer
            )
    assert throttled.value.response["Error"]["Code"] == "ThrottledClientException"
    counters = await chime.counters()
    assert counters["calls"]["ListChannelMembershipsForAppInstanceUser"] == 3  # 1 + 2 attempts
