"""chime-sdk-meetings: operations through real clients, and the lifetime rules of meetings."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulators.chime.control import EmulatorControl
from tests.emulator.world import Clients, new_meeting

GUID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
PLACEMENT_MEMBERS = {
    "AudioHostUrl",
    "AudioFallbackUrl",
    "SignalingUrl",
    "TurnControlUrl",
    "ScreenDataUrl",
    "ScreenViewingUrl",
    "ScreenSharingUrl",
    "EventIngestionUrl",
}


def _error_code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def test_create_meeting_returns_full_join_info(meetings: Any) -> None:
    meeting = new_meeting(meetings, "room-1", MediaRegion="eu-central-1", MeetingHostId="host-1")
    assert GUID.match(meeting["MeetingId"])
    assert meeting["ExternalMeetingId"] == "room-1"
    assert meeting["MediaRegion"] == "eu-central-1"
    assert meeting["MeetingHostId"] == "host-1"
    assert meeting["MeetingArn"] == (
        f"arn:aws:chime:us-east-1:123456789012:meeting/{meeting['MeetingId']}"
    )
    placement = meeting["MediaPlacement"]
    assert set(placement) == PLACEMENT_MEMBERS
    assert placement["SignalingUrl"].startswith("wss://signal.m3.ec1.app.chime.aws/")
    assert meeting["MeetingId"] in placement["AudioFallbackUrl"]
    assert meetings.get_meeting(MeetingId=meeting["MeetingId"])["Meeting"] == meeting


def test_external_meeting_id_is_not_unique(meetings: Any) -> None:
    first = new_meeting(meetings, "same-title", ClientRequestToken="token-a")
    second = new_meeting(meetings, "same-title", ClientRequestToken="token-b")
    assert first["MeetingId"] != second["MeetingId"]


async def test_client_request_token_returns_the_same_meeting(
    meetings: Any, control: EmulatorControl
) -> None:
    first = new_meeting(meetings, "room-1", ClientRequestToken="retry-me")
    retried = new_meeting(meetings, "room-1", ClientRequestToken="retry-me")
    assert retried == first
    assert [m["MeetingId"] for m in await control.live_meetings()] == [first["MeetingId"]]
    assert (await control.counters())["succeeded"]["CreateMeeting"] == 2


def test_media_region_must_be_a_chime_media_region(meetings: Any) -> None:
    with pytest.raises(meetings.exceptions.BadRequestException):
        new_meeting(meetings, MediaRegion="mars-north-1")


def test_attendees(meetings: Any) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    attendee = meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="user-1")["Attendee"]
    assert GUID.match(attendee["AttendeeId"])
    assert attendee["ExternalUserId"] == "user-1"
    assert len(attendee["JoinToken"]) > 20
    assert attendee["Capabilities"] == {
        "Audio": "SendReceive",
        "Video": "SendReceive",
        "Content": "SendReceive",
    }
    fetched = meetings.get_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    assert fetched["Attendee"] == attendee

    again = meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="user-1")["Attendee"]
    assert again == attendee, "a user created again gets their existing attendee"

    capped = meetings.create_attendee(
        MeetingId=meeting_id,
        ExternalUserId="user-2",
        Capabilities={"Audio": "SendReceive", "Video": "None", "Content": "Receive"},
    )["Attendee"]
    assert capped["Capabilities"]["Video"] == "None"
    listed = meetings.list_attendees(MeetingId=meeting_id)["Attendees"]
    assert [a["ExternalUserId"] for a in listed] == ["user-1", "user-2"]

    meetings.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])


def test_list_attendees_pages(meetings: Any) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    meetings.batch_create_attendee(
        MeetingId=meeting_id, Attendees=[{"ExternalUserId": f"user-{n:02}"} for n in range(7)]
    )
    seen: list[str] = []
    kwargs: dict[str, Any] = {"MeetingId": meeting_id, "MaxResults": 3}
    while True:
        page = meetings.list_attendees(**kwargs)
        seen += [a["ExternalUserId"] for a in page["Attendees"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert seen == [f"user-{n:02}" for n in range(7)]


def test_batch_create_attendee(meetings: Any) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    existing = meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="user-0")["Attendee"]
    result = meetings.batch_create_attendee(
        MeetingId=meeting_id, Attendees=[{"ExternalUserId": f"user-{n}"} for n in range(100)]
    )
    assert result["Errors"] == []
    assert len(result["Attendees"]) == 100
    assert result["Attendees"][0] == existing
    assert len({a["AttendeeId"] for a in result["Attendees"]}) == 100

    with pytest.raises(meetings.exceptions.BadRequestException) as caught:
        meetings.batch_create_attendee(
            MeetingId=meeting_id, Attendees=[{"ExternalUserId": f"more-{n}"} for n in range(101)]
        )
    assert "maximum of 100" in caught.value.response["Error"]["Message"]


async def test_attendee_capacity_is_reported_per_attendee(
    meetings: Any, control: EmulatorControl
) -> None:
    await control.set_config(meeting_max_attendees=2)
    meeting_id = new_meeting(meetings)["MeetingId"]
    result = meetings.batch_create_attendee(
        MeetingId=meeting_id, Attendees=[{"ExternalUserId": f"user-{n}"} for n in range(3)]
    )
    assert [a["ExternalUserId"] for a in result["Attendees"]] == ["user-0", "user-1"]
    assert [e["ExternalUserId"] for e in result["Errors"]] == ["user-2"]
    with pytest.raises(meetings.exceptions.LimitExceededException):
        meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="user-3")


def test_create_meeting_with_attendees(meetings: Any) -> None:
    result = meetings.create_meeting_with_attendees(
        ClientRequestToken="with-attendees",
        MediaRegion="us-west-2",
        ExternalMeetingId="room-9",
        Attendees=[{"ExternalUserId": "a1"}, {"ExternalUserId": "a2"}],
    )
    meeting_id = result["Meeting"]["MeetingId"]
    assert [a["ExternalUserId"] for a in result["Attendees"]] == ["a1", "a2"]
    assert result["Errors"] == []
    listed = meetings.list_attendees(MeetingId=meeting_id)["Attendees"]
    assert {a["AttendeeId"] for a in listed} == {a["AttendeeId"] for a in result["Attendees"]}


def test_delete_meeting_ends_it(meetings: Any) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    meetings.delete_meeting(MeetingId=meeting_id)
    for call in (
        lambda: meetings.get_meeting(MeetingId=meeting_id),
        lambda: meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="late"),
        lambda: meetings.list_attendees(MeetingId=meeting_id),
        lambda: meetings.delete_meeting(MeetingId=meeting_id),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert _error_code(caught.value) == "NotFoundException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_malformed_meeting_ids_are_bad_requests(meetings: Any) -> None:
    with pytest.raises(meetings.exceptions.BadRequestException):
        meetings.get_meeting(MeetingId="not-a-guid")


async def test_idle_meeting_ends_after_the_idle_time(
    meetings: Any, control: EmulatorControl
) -> None:
    # The clock also moves in real time: the steps leave a margin of 10 s.
    meeting_id = new_meeting(meetings)["MeetingId"]
    await control.advance_clock(290)
    attendee = meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="u1")["Attendee"]
    await control.connect(meeting_id, attendee["AttendeeId"])
    await control.advance_clock(3600)
    assert meetings.get_meeting(MeetingId=meeting_id)["Meeting"]["MeetingId"] == meeting_id, (
        "a connected attendee keeps the meeting alive"
    )
    meetings.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    await control.advance_clock(290)
    meetings.get_meeting(MeetingId=meeting_id)
    await control.advance_clock(10)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=meeting_id)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="u1")
    assert await control.live_meetings() == []


async def test_a_meeting_nobody_joins_ends_after_the_idle_time(
    meetings: Any, control: EmulatorControl
) -> None:
    await control.set_config(meeting_idle_seconds=60)
    meeting_id = new_meeting(meetings)["MeetingId"]
    await control.advance_clock(61)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="too-late")


async def test_meeting_ends_after_its_maximum_lifetime(
    meetings: Any, control: EmulatorControl
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    attendee = meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="stays-all-day")
    await control.connect(meeting_id, attendee["Attendee"]["AttendeeId"])
    await control.advance_clock(86_390)
    meetings.get_meeting(MeetingId=meeting_id)
    await control.advance_clock(10)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=meeting_id)


async def test_a_retried_token_after_the_meeting_ended_creates_a_new_one(
    meetings: Any, control: EmulatorControl
) -> None:
    first = new_meeting(meetings, ClientRequestToken="same")
    await control.end_meeting(first["MeetingId"])
    second = new_meeting(meetings, ClientRequestToken="same")
    assert second["MeetingId"] != first["MeetingId"]


async def test_end_meeting_through_the_control_api(meetings: Any, control: EmulatorControl) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="u1")
    live = await control.live_meetings()
    assert [(m["MeetingId"], m["attendee_count"]) for m in live] == [(meeting_id, 1)]
    ended = await control.end_meeting(meeting_id)
    assert ended["end_reason"] == "ended_by_control_api"
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=meeting_id)


async def test_meetings_with_aiobotocore(aio: Clients) -> None:
    created = await aio.meetings.create_meeting(
        ClientRequestToken=uuid.uuid4().hex, MediaRegion="us-east-1", ExternalMeetingId="aio-room"
    )
    meeting_id = created["Meeting"]["MeetingId"]
    fetched = await aio.meetings.get_meeting(MeetingId=meeting_id)
    assert fetched["Meeting"]["ExternalMeetingId"] == "aio-room"
    attendee = (await aio.meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="x1"))[
        "Attendee"
    ]
    batch = await aio.meetings.batch_create_attendee(
        MeetingId=meeting_id, Attendees=[{"ExternalUserId": "x2"}, {"ExternalUserId": "x3"}]
    )
    assert len(batch["Attendees"]) == 2
    got = await aio.meetings.get_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    assert got["Attendee"]["JoinToken"] == attendee["JoinToken"]
    listed = await aio.meetings.list_attendees(MeetingId=meeting_id)
    assert len(listed["Attendees"]) == 3
    await aio.meetings.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    with_attendees = await aio.meetings.create_meeting_with_attendees(
        ClientRequestToken=uuid.uuid4().hex,
        MediaRegion="us-east-1",
        ExternalMeetingId="aio-room-2",
        Attendees=[{"ExternalUserId": "y1"}],
    )
    assert with_attendees["Attendees"][0]["ExternalUserId"] == "y1"
    await aio.meetings.delete_meeting(MeetingId=meeting_id)
    with pytest.raises(aio.meetings.exceptions.NotFoundException):
        await aio.meetings.get_meeting(MeetingId=meeting_id)


async def test_concurrent_calls_see_consistent_state(
    aio: Clients, control: EmulatorControl
) -> None:
    async def create_meeting() -> str:
        created = await aio.meetings.create_meeting(
            ClientRequestToken="one-token", MediaRegion="us-east-1", ExternalMeetingId="busy"
        )
        return str(created["Meeting"]["MeetingId"])

    meeting_ids = await asyncio.gather(*(create_meeting() for _ in range(20)))
    assert len(set(meeting_ids)) == 1
    assert len(await control.live_meetings()) == 1

    async def join() -> str:
        created = await aio.meetings.create_attendee(
            MeetingId=meeting_ids[0], ExternalUserId="same-user"
        )
        return str(created["Attendee"]["AttendeeId"])

    attendee_ids = await asyncio.gather(*(join() for _ in range(20)))
    assert len(set(attendee_ids)) == 1
    [live] = await control.live_meetings()
    assert live["attendee_count"] == 1
