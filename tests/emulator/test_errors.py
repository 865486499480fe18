"""Errors as botocore expects them, and never an HTML page or a hang."""

from __future__ import annotations

from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
import httpx
import pytest

from emulators.chime.calls import Call
from emulators.chime.clock import ManualClock
from emulators.chime.emulator import ChimeRequest, Emulator
from tests.emulator.world import Clients, World, new_channel


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/no/such/thing"), ("PATCH", "/meetings"), ("GET", "/connect")],
)
def test_unknown_paths_answer_chime_style_json(emulator_url: str, method: str, path: str) -> None:
    response = httpx.request(method, f"{emulator_url}{path}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-amzn-errortype"] == "UnknownOperationException"
    body = response.json()
    assert body["Code"] == "UnknownOperation"
    assert f"{method} {path}" in body["Message"]


def test_unimplemented_operations_name_themselves(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world)
    with pytest.raises(messaging.exceptions.BadRequestException) as caught:
        messaging.list_channel_bans(ChannelArn=channel, ChimeBearer=world.alice)
    message = caught.value.response["Error"]["Message"]
    assert "ListChannelBans" in message
    assert "not implemented by the Belfry Chime emulator" in message


async def test_unimplemented_operations_with_aiobotocore(aio: Clients) -> None:
    with pytest.raises(aio.meetings.exceptions.BadRequestException) as caught:
        await aio.meetings.start_meeting_transcription(
            MeetingId="00000000-0000-0000-0000-000000000000",
            TranscriptionConfiguration={"EngineTranscribeSettings": {"LanguageCode": "en-US"}},
        )
    assert "StartMeetingTranscription" in caught.value.response["Error"]["Message"]


def test_error_bodies_follow_the_models(emulator_url: str, world: World) -> None:
    missing = world.user("ghost").replace("/", "%2F")
    identity_error = httpx.get(f"{emulator_url}/app-instance-users/{missing}")
    assert identity_error.status_code == 404
    assert identity_error.headers["x-amzn-errortype"] == "NotFoundException"
    assert identity_error.json()["Code"] == "NotFound"
    assert "x-amzn-requestid" in identity_error.headers

    meeting_error = httpx.get(f"{emulator_url}/meetings/00000000-0000-0000-0000-000000000000")
    assert meeting_error.status_code == 404
    body = meeting_error.json()
    assert body["RequestId"] == meeting_error.headers["x-amzn-requestid"]


def test_malformed_json_is_a_bad_request(emulator_url: str) -> None:
    response = httpx.post(f"{emulator_url}/meetings", content=b"{not json")
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "BadRequestException"


def test_missing_required_members_are_bad_requests(emulator_url: str) -> None:
    response = httpx.post(f"{emulator_url}/meetings", json={"MediaRegion": "us-east-1"})
    assert response.status_code == 400
    message = response.json()["Message"]
    assert "ClientRequestToken: is required" in message
    assert "ExternalMeetingId: is required" in message


def test_a_failing_handler_answers_service_failure() -> None:
    emulator = Emulator(clock=ManualClock())

    def broken(call: Call) -> dict[str, Any]:
        raise RuntimeError("boom")

    emulator.handlers[("chime-sdk-messaging", "GetMessagingSessionEndpoint")] = broken
    response = emulator.handle(ChimeRequest("GET", "/endpoints/messaging-session", {}, {}, b""))
    assert response.status == 500
    assert response.headers["x-amzn-errortype"] == "ServiceFailureException"
    assert emulator.counters.as_json()["failed"] == {"GetMessagingSessionEndpoint": 1}


def test_the_region_comes_from_the_signature(emulator_url: str) -> None:
    eu = boto3.client(
        "chime-sdk-identity",
        endpoint_url=emulator_url,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = eu.create_app_instance(Name="eu")["AppInstanceArn"]
    assert arn.startswith("arn:aws:chime:eu-west-1:123456789012:app-instance/")
