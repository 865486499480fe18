"""Request-rate limits, injected faults and the counters that report them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from emulators.chime.control import EmulatorControl
from tests.emulator.world import World, boto3_client, new_channel, new_meeting


def _outcome(call: Any) -> str:
    try:
        call()
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        return f"{error.response['Error']['Code']}/{status}"
    return "ok"


async def test_meetings_are_throttled_with_throttling_exception(
    meetings: Any, control: EmulatorControl
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    await control.set_limits(operations={"CreateAttendee": {"rate": 1, "burst": 2}})
    outcomes = [
        _outcome(lambda n=n: meetings.create_attendee(MeetingId=meeting_id, ExternalUserId=f"u{n}"))
        for n in range(3)
    ]
    assert outcomes == ["ok", "ok", "ThrottlingException/429"]
    assert _outcome(lambda: meetings.get_meeting(MeetingId=meeting_id)) == "ok", (
        "each operation has its own bucket"
    )

    await control.advance_clock(1)  # one token back
    assert _outcome(
        lambda: meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="u3")
    ) == ("ok")
    counters = await control.counters()
    assert counters["calls"]["CreateAttendee"] == 4
    assert counters["throttled"]["CreateAttendee"] == 1
    assert counters["succeeded"]["CreateAttendee"] == 3


async def test_messaging_and_identity_are_throttled_with_throttled_client_exception(
    messaging: Any, identity: Any, world: World, control: EmulatorControl
) -> None:
    channel = new_channel(messaging, world)
    await control.set_limits(default={"rate": 10, "burst": 20})

    def send() -> None:
        messaging.send_channel_message(
            ChannelArn=channel,
            Content="x",
            Type="STANDARD",
            Persistence="PERSISTENT",
            ChimeBearer=world.alice,
        )

    # Calls take time and buckets refill meanwhile: past the burst, most are refused.
    outcomes = [_outcome(send) for _ in range(40)]
    assert outcomes[:20] == ["ok"] * 20, "Chime's default: a burst of 20"
    assert "ThrottledClientException/429" in outcomes[20:]

    def send_until_refused() -> None:
        for _ in range(40):
            send()

    with pytest.raises(messaging.exceptions.ThrottledClientException):
        send_until_refused()
    describes = [
        _outcome(lambda: identity.describe_app_instance(AppInstanceArn=world.app_instance_arn))
        for _ in range(40)
    ]
    assert "ThrottledClientException/429" in describes[20:]

    await control.clear_limits()
    assert _outcome(send) == "ok"


async def test_throttled_calls_succeed_once_the_bucket_refills_in_real_time(
    meetings: Any, control: EmulatorControl
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    await control.set_limits(operations={"GetMeeting": {"rate": 5, "burst": 1}})
    assert _outcome(lambda: meetings.get_meeting(MeetingId=meeting_id)) == "ok"
    outcomes = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # a bounded wait on a condition: 5/s refills in 0.2 s
        outcomes.append(_outcome(lambda: meetings.get_meeting(MeetingId=meeting_id)))
        if outcomes[-1] == "ok":
            break
    assert outcomes[0] == "ThrottlingException/429"
    assert outcomes[-1] == "ok"


async def test_botocore_retries_throttling_exception_but_not_throttled_client_exception(
    emulator_url: str, world: World, messaging: Any, control: EmulatorControl
) -> None:
    """The pitfall in DESIGN.md, shown with the emulator: standard mode leaves 429s of
    messaging and identity to the caller."""
    retrying = Config(retries={"mode": "standard", "max_attempts": 4})
    meetings = boto3_client("chime-sdk-meetings", emulator_url, retrying)
    retrying_messaging = boto3_client("chime-sdk-messaging", emulator_url, retrying)
    meeting_id = new_meeting(meetings)["MeetingId"]
    channel = new_channel(messaging, world)
    # A token every 0.2 s: back-to-back calls are refused, a retry after backoff is not.
    await control.set_limits(default={"rate": 5, "burst": 1})

    meetings.get_meeting(MeetingId=meeting_id)
    retried = meetings.get_meeting(MeetingId=meeting_id)
    assert retried["ResponseMetadata"]["RetryAttempts"] >= 1

    retrying_messaging.describe_channel(ChannelArn=channel, ChimeBearer=world.alice)
    with pytest.raises(retrying_messaging.exceptions.ThrottledClientException) as caught:
        retrying_messaging.describe_channel(ChannelArn=channel, ChimeBearer=world.alice)
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 0


async def test_faults_answer_a_share_of_calls(messaging: Any, control: EmulatorControl) -> None:
    await control.set_faults(
        seed=7, operations={"GetMessagingSessionEndpoint": {"share": 0.3, "statuses": [503]}}
    )
    outcomes = [_outcome(messaging.get_messaging_session_endpoint) for _ in range(300)]
    faults = outcomes.count("ServiceUnavailableException/503")
    assert set(outcomes) == {"ok", "ServiceUnavailableException/503"}
    assert 60 <= faults <= 120, faults
    counters = await control.counters()
    assert counters["faulted"]["GetMessagingSessionEndpoint"] == faults
    assert counters["succeeded"]["GetMessagingSessionEndpoint"] == 300 - faults

    # The same seed gives the same faults.
    await control.clear_faults()
    await control.set_faults(
        seed=7, operations={"GetMessagingSessionEndpoint": {"share": 0.3, "statuses": [503]}}
    )
    again = [_outcome(messaging.get_messaging_session_endpoint) for _ in range(300)]
    assert again == outcomes


async def test_fault_statuses_follow_the_models(
    meetings: Any, messaging: Any, control: EmulatorControl
) -> None:
    await control.set_faults(seed=1, default={"share": 1.0, "statuses": [500]})
    assert _outcome(messaging.get_messaging_session_endpoint) == "ServiceFailureException/500"
    assert _outcome(lambda: new_meeting(meetings)) == "ServiceFailureException/500"
    with pytest.raises(meetings.exceptions.ServiceFailureException):
        new_meeting(meetings)

    await control.set_faults(
        seed=1,
        default={"share": 1.0, "statuses": [500]},
        operations={"CreateMeeting": {"share": 0.0}},
    )
    assert _outcome(lambda: new_meeting(meetings)) == "ok", "an operation's rule beats the default"

    await control.set_faults(seed=3, default={"share": 1.0, "statuses": [500, 503]})
    statuses = {_outcome(messaging.get_messaging_session_endpoint) for _ in range(40)}
    assert statuses == {"ServiceFailureException/500", "ServiceUnavailableException/503"}
    await control.clear_faults()
    assert _outcome(messaging.get_messaging_session_endpoint) == "ok"


async def test_counters_prove_exactly_one_call(meetings: Any, control: EmulatorControl) -> None:
    new_meeting(meetings)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId="00000000-0000-0000-0000-000000000000")
    counters = await control.counters()
    assert counters["calls"] == {"CreateMeeting": 1, "GetMeeting": 1}
    assert counters["succeeded"] == {"CreateMeeting": 1}
    assert counters["failed"] == {"GetMeeting": 1}
    await control.reset_counters()
    assert (await control.counters())["calls"] == {}
