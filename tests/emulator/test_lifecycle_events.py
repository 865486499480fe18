"""Chime meeting lifecycle events: which call emits what, their envelope and order."""

from __future__ import annotations

import re
import uuid
from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
import httpx
import pytest

from emulators.chime.clock import ManualClock
from emulators.chime.config import EmulatorConfig
from emulators.chime.control import EmulatorControl, EmulatorControlError
from emulators.chime.emulator import Emulator
from tests.emulator.world import ACCESS_KEY, NO_RETRIES, SECRET_KEY, handle_json, new_meeting

ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ATTENDEE_EVENTS = {
    "chime:AttendeeAdded",
    "chime:AttendeeDeleted",
    "chime:AttendeeJoined",
    "chime:AttendeeLeft",
    "chime:AttendeeDropped",
}


def _of(recent: list[dict[str, Any]], meeting_id: str) -> list[dict[str, Any]]:
    return [e for e in recent if e["detail"]["meetingId"] == meeting_id]


async def test_each_operation_emits_its_event_in_order(
    meetings: Any, control: EmulatorControl
) -> None:
    created = meetings.create_meeting_with_attendees(
        ClientRequestToken="lifecycle",
        MediaRegion="eu-central-1",
        ExternalMeetingId="room-7",
        Attendees=[{"ExternalUserId": "a1"}, {"ExternalUserId": "a2"}],
    )
    meeting = created["Meeting"]
    a1, a2 = (a["AttendeeId"] for a in created["Attendees"])
    # Idempotent repeats: the same meeting and the same attendees, no events.
    meetings.create_meeting_with_attendees(
        ClientRequestToken="lifecycle",
        MediaRegion="eu-central-1",
        ExternalMeetingId="room-7",
        Attendees=[{"ExternalUserId": "a1"}],
    )
    meetings.create_attendee(MeetingId=meeting["MeetingId"], ExternalUserId="a2")
    a3 = meetings.create_attendee(MeetingId=meeting["MeetingId"], ExternalUserId="a3")
    await control.connect(meeting["MeetingId"], a1)
    await control.drop(meeting["MeetingId"], a1)
    await control.connect(meeting["MeetingId"], a1)
    meetings.delete_attendee(MeetingId=meeting["MeetingId"], AttendeeId=a1)  # connected
    meetings.delete_attendee(MeetingId=meeting["MeetingId"], AttendeeId=a2)  # never was
    meetings.delete_meeting(MeetingId=meeting["MeetingId"])

    events = _of((await control.events())["recent"], meeting["MeetingId"])
    assert [(e["detail"]["eventType"], e["detail"].get("externalUserId")) for e in events] == [
        ("chime:MeetingStarted", None),
        ("chime:AttendeeAdded", "a1"),
        ("chime:AttendeeAdded", "a2"),
        ("chime:AttendeeAdded", "a3"),
        ("chime:AttendeeJoined", "a1"),
        ("chime:AttendeeDropped", "a1"),
        ("chime:AttendeeJoined", "a1"),
        ("chime:AttendeeLeft", "a1"),
        ("chime:AttendeeDeleted", "a1"),
        ("chime:AttendeeDeleted", "a2"),
        ("chime:MeetingEnded", None),
    ]
    attendee_ids = {"a1": a1, "a2": a2, "a3": a3["Attendee"]["AttendeeId"]}
    for event in events:
        detail = event["detail"]
        assert set(event) == {
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        }
        assert event["version"] == "0"
        assert uuid.UUID(event["id"])
        assert event["detail-type"] == "Chime Meeting State Change"
        assert event["source"] == "aws.chime"
        assert event["account"] == "123456789012"
        assert event["region"] == "us-east-1", "the region of the call, not the media region"
        assert event["resources"] == [meeting["MeetingArn"]]
        assert ISO_SECONDS.match(event["time"])
        assert detail["version"] == "0"
        assert isinstance(detail["timestamp"], int)
        assert detail["externalMeetingId"] == "room-7"
        assert detail["mediaRegion"] == "eu-central-1"
        expected = {"version", "eventType", "timestamp", "meetingId"}
        expected |= {"externalMeetingId", "mediaRegion"}
        if detail["eventType"] in ATTENDEE_EVENTS:
            expected |= {"attendeeId", "externalUserId"}
            assert detail["attendeeId"] == attendee_ids[detail["externalUserId"]]
        if detail["eventType"] == "chime:AttendeeJoined":
            expected.add("networkType")
            assert detail["networkType"] == "Normal"
        assert set(detail) == expected
    stamps = [e["detail"]["timestamp"] for e in events]
    assert stamps == sorted(set(stamps)), "strictly increasing"


async def test_events_carry_the_region_of_the_call(
    emulator_url: str, control: EmulatorControl
) -> None:
    client = boto3.client(
        "chime-sdk-meetings",
        endpoint_url=emulator_url,
        region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=NO_RETRIES,
    )
    meeting = new_meeting(client, MediaRegion="us-west-2")
    [event] = _of((await control.events())["recent"], meeting["MeetingId"])
    assert event["region"] == "eu-west-1"
    assert event["resources"] == [meeting["MeetingArn"]]
    assert ":eu-west-1:" in meeting["MeetingArn"]


async def test_control_api_end_and_idle_end_emit_meeting_ended(
    meetings: Any, control: EmulatorControl
) -> None:
    by_control = new_meeting(meetings)["MeetingId"]
    idle = new_meeting(meetings)["MeetingId"]
    await control.end_meeting(by_control)
    await control.advance_clock(301)
    recent = (await control.events())["recent"]
    for meeting_id in (by_control, idle):
        types = [e["detail"]["eventType"] for e in _of(recent, meeting_id)]
        assert types == ["chime:MeetingStarted", "chime:MeetingEnded"]


def test_timestamps_strictly_increase_when_the_clock_stands_still() -> None:
    clock = ManualClock(1_700_000_000.0)
    emulator = Emulator(clock=clock)
    status, created = handle_json(
        emulator,
        "POST",
        "/meetings",
        {"ClientRequestToken": "t1", "MediaRegion": "us-east-1", "ExternalMeetingId": "room"},
    )
    assert status == 200
    meeting_id = created["Meeting"]["MeetingId"]
    path = f"/meetings/{meeting_id}/attendees"
    status, attendee = handle_json(emulator, "POST", path, {"ExternalUserId": "u1"})
    assert status == 200
    meeting = emulator.meetings.live[meeting_id]
    record = meeting.attendees[attendee["Attendee"]["AttendeeId"]]
    emulator.meetings.connect(meeting, record, clock.now())
    emulator.meetings.disconnect(meeting, record, clock.now())
    stamps = [e["detail"]["timestamp"] for e in emulator.events.recent]
    start = 1_700_000_000_000
    assert stamps == [start, start + 1, start + 2, start + 3]
    clock.advance(5)
    emulator.meetings.connect(meeting, record, clock.now())
    assert emulator.events.recent[-1]["detail"]["timestamp"] == start + 5000
    assert emulator.background.active() == [], "no event loop, no background task"


def test_an_end_found_lazily_is_emitted_once_at_the_moment_it_happened() -> None:
    clock = ManualClock(1_700_000_000.0)
    emulator = Emulator(clock=clock, config=EmulatorConfig(meeting_idle_seconds=60))
    body = {"ClientRequestToken": "t1", "MediaRegion": "us-east-1", "ExternalMeetingId": "room"}
    meeting_id = handle_json(emulator, "POST", "/meetings", body)[1]["Meeting"]["MeetingId"]
    clock.advance(600)
    for _ in range(2):
        assert handle_json(emulator, "GET", f"/meetings/{meeting_id}")[0] == 404
    emulator.sweep()
    ended = [e for e in emulator.events.recent if e["detail"]["eventType"] == "chime:MeetingEnded"]
    assert [e["detail"]["timestamp"] for e in ended] == [1_700_000_060_000]
    assert ended[0]["time"] == "2023-11-14T22:14:20Z"


async def test_reset_forgets_the_events(meetings: Any, control: EmulatorControl) -> None:
    new_meeting(meetings)
    assert (await control.events())["recent"]
    await control.reset()
    assert await control.events() == {
        "published": 0,
        "pending": 0,
        "dropped": 0,
        "failed_attempts": 0,
        "recent": [],
    }


async def test_recent_keeps_the_last_200(meetings: Any, control: EmulatorControl) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    for batch in range(3):
        meetings.batch_create_attendee(
            MeetingId=meeting_id,
            Attendees=[{"ExternalUserId": f"u{batch}-{n}"} for n in range(80)],
        )
    stats = await control.events()
    assert len(stats["recent"]) == 200
    assert stats["recent"][-1]["detail"]["externalUserId"] == "u2-79"
    assert stats["pending"] == 0, "publishing is off: nothing is queued"


async def test_events_config(control: EmulatorControl, emulator_url: str) -> None:
    defaults = await control.config()
    assert (defaults["events_endpoint"], defaults["event_bus_name"]) == (None, "default")
    updated = await control.set_config(events_endpoint="http://127.0.0.1:1/", event_bus_name="b")
    assert (updated["events_endpoint"], updated["event_bus_name"]) == ("http://127.0.0.1:1", "b")
    assert (await control.set_config(events_endpoint=None))["events_endpoint"] is None
    for bad in ({"events_endpoint": "ftp://x"}, {"events_endpoint": 5}, {"event_bus_name": ""}):
        response = httpx.put(f"{emulator_url}/_emulator/config", json=bad)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_config"
    with pytest.raises(EmulatorControlError):
        await control.set_config(event_bus_name="")
    await control.reset()
    assert (await control.config())["event_bus_name"] == "default"
