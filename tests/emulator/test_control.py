"""The control API and its client."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from emulators.chime.control import EmulatorControl, EmulatorControlError
from tests.emulator.world import World, new_channel, new_meeting


async def test_clock(control: EmulatorControl) -> None:
    before = await control.now()
    after = await control.advance_clock(3600)
    assert after - before >= 3600
    assert await control.now() >= after
    with pytest.raises(EmulatorControlError) as caught:
        await control.advance_clock(-1)
    assert caught.value.status == 400


async def test_config_partial_updates_and_validation(control: EmulatorControl) -> None:
    defaults = await control.config()
    assert defaults["meeting_idle_seconds"] == 300
    assert defaults["meeting_max_seconds"] == 86_400
    updated = await control.set_config(meeting_idle_seconds=30)
    assert updated["meeting_idle_seconds"] == 30
    assert updated["meeting_max_seconds"] == 86_400
    with pytest.raises(EmulatorControlError) as caught:
        await control.set_config(meeting_max_seconds=-5)
    assert caught.value.body["error"]["code"] == "invalid_config"
    assert (await control.config())["meeting_max_seconds"] == 86_400


def test_config_rejects_unknown_settings(emulator_url: str) -> None:
    response = httpx.put(f"{emulator_url}/_emulator/config", json={"meeting_idle": 1})
    assert response.status_code == 400
    assert "unknown setting" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/limits", {"default": {"rate": 0, "burst": 1}}),
        ("/limits", {"operations": {"NoSuchOperation": {"rate": 1, "burst": 1}}}),
        ("/faults", {"default": {"share": 1.5}}),
        ("/faults", {"default": {"share": 0.5, "statuses": [404]}}),
        ("/faults", {"seed": "x"}),
        ("/clock", {"advance_seconds": "soon"}),
    ],
)
def test_invalid_settings_are_refused(emulator_url: str, path: str, body: Any) -> None:
    method = "POST" if path == "/clock" else "PUT"
    response = httpx.request(method, f"{emulator_url}/_emulator{path}", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_unknown_control_paths_answer_json(emulator_url: str) -> None:
    response = httpx.get(f"{emulator_url}/_emulator/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_end_unknown_meeting_is_404(control: EmulatorControl) -> None:
    with pytest.raises(EmulatorControlError) as caught:
        await control.end_meeting("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 404


async def test_reset_forgets_everything(
    control: EmulatorControl, meetings: Any, messaging: Any, world: World, emulator_url: str
) -> None:
    meeting = new_meeting(meetings)
    new_channel(messaging, world)
    await control.set_config(meeting_idle_seconds=5)
    await control.set_limits(default={"rate": 1, "burst": 1})
    await control.set_faults(seed=1, default={"share": 0.0})
    await control.advance_clock(1000)

    await control.reset()
    assert await control.live_meetings() == []
    assert await control.channels() == []
    assert (await control.config())["meeting_idle_seconds"] == 300
    assert (await control.counters())["calls"] == {}
    assert abs(await control.now() - time.time()) < 5, "the clock is back to real time"
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=meeting["MeetingId"])
    limits = httpx.get(f"{emulator_url}/_emulator/limits").json()
    assert limits == {"default": None, "operations": {}}


async def test_channel_views(control: EmulatorControl, messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world, Name="support", MemberArns=[world.bob])
    [view] = await control.channels()
    assert view["ChannelArn"] == channel
    assert view["members"] == sorted([world.alice, world.bob])
    assert view["moderators"] == [world.alice]
    assert (await control.channel(channel))["Name"] == "support"


async def test_messaging_endpoint_can_be_configured(
    control: EmulatorControl, messaging: Any
) -> None:
    await control.set_config(messaging_endpoint="chime-emulator:9911")
    assert messaging.get_messaging_session_endpoint()["Endpoint"]["Url"] == "chime-emulator:9911"


async def test_health(control: EmulatorControl) -> None:
    assert await control.health() is True
