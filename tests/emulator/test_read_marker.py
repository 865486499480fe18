"""UpdateChannelReadMarker: a member's marker, visible in the
membership-for-user listing; refused to non-members (as Chime does)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator.world import World, new_channel


def _summary(messaging: Any, user: str, channel: str) -> dict[str, Any]:
    rows = messaging.list_channel_memberships_for_app_instance_user(ChimeBearer=user)
    [row] = [r for r in rows["ChannelMemberships"] if r["ChannelSummary"]["ChannelArn"] == channel]
    return dict(row["AppInstanceUserMembershipSummary"])


def test_a_member_sets_their_read_marker(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world, MemberArns=[world.bob])
    assert "ReadMarkerTimestamp" not in _summary(messaging, world.bob, channel)
    answer = messaging.update_channel_read_marker(ChannelArn=channel, ChimeBearer=world.bob)
    assert answer["ChannelArn"] == channel
    marked = _summary(messaging, world.bob, channel)["ReadMarkerTimestamp"]
    messaging.update_channel_read_marker(ChannelArn=channel, ChimeBearer=world.bob)
    assert _summary(messaging, world.bob, channel)["ReadMarkerTimestamp"] >= marked
    assert "ReadMarkerTimestamp" not in _summary(messaging, world.alice, channel)  # per member


def test_a_non_member_may_not_set_one(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world)
    with pytest.raises(ClientError) as error:
        messaging.update_channel_read_marker(ChannelArn=channel, ChimeBearer=world.carol)
    assert error.value.response["Error"]["Code"] == "ForbiddenException"
