"""The media side (what the Chime JS SDK does in a browser) and when meetings end."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from emulators.chime.control import EmulatorControl, EmulatorControlError
from tests.emulator.world import new_meeting
from tests.support import wait_until

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def _attendee(meetings: Any, meeting_id: str, user: str = "u1") -> str:
    created = meetings.create_attendee(MeetingId=meeting_id, ExternalUserId=user)
    return str(created["Attendee"]["AttendeeId"])


async def _event_types(control: EmulatorControl, meeting_id: str) -> list[str]:
    recent = (await control.events())["recent"]
    return [e["detail"]["eventType"] for e in recent if e["detail"]["meetingId"] == meeting_id]


async def test_connect_disconnect_and_drop_answer_the_attendee_state(
    meetings: Any, control: EmulatorControl
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    attendee_id = _attendee(meetings, meeting_id)
    state = await control.connect(meeting_id, attendee_id)
    assert state == {
        "MeetingId": meeting_id,
        "AttendeeId": attendee_id,
        "ExternalUserId": "u1",
        "connected": True,
    }
    [live] = await control.live_meetings()
    assert (live["attendee_count"], live["connected_count"]) == (1, 1)
    assert (await control.disconnect(meeting_id, attendee_id))["connected"] is False
    [live] = await control.live_meetings()
    assert (live["attendee_count"], live["connected_count"]) == (1, 0)
    assert (await control.connect(meeting_id, attendee_id))["connected"] is True
    assert (await control.drop(meeting_id, attendee_id))["connected"] is False


async def test_media_calls_are_idempotent_and_publish_nothing_twice(
    meetings: Any, control: EmulatorControl
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    attendee_id = _attendee(meetings, meeting_id)
    await control.disconnect(meeting_id, attendee_id)  # not connected yet
    await control.drop(meeting_id, attendee_id)
    for _ in range(2):
        assert (await control.connect(meeting_id, attendee_id))["connected"] is True
    for _ in range(2):
        assert (await control.disconnect(meeting_id, attendee_id))["connected"] is False
    await control.drop(meeting_id, attendee_id)
    assert await _event_types(control, meeting_id) == [
        "chime:MeetingStarted",
        "chime:AttendeeAdded",
        "chime:AttendeeJoined",
        "chime:AttendeeLeft",
    ]


async def test_media_calls_on_unknown_meetings_and_attendees_are_404(
    meetings: Any, control: EmulatorControl, emulator_url: str
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    attendee_id = _attendee(meetings, meeting_id)
    cases = [
        (UNKNOWN, attendee_id, "meeting_not_found"),
        (meeting_id, UNKNOWN, "attendee_not_found"),
    ]
    for meeting, attendee, code in cases:
        for call in (control.connect, control.disconnect, control.drop):
            with pytest.raises(EmulatorControlError) as caught:
                await call(meeting, attendee)
            assert caught.value.status == 404
            assert caught.value.body["error"]["code"] == code
            assert caught.value.body["error"]["message"]

    meetings.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee_id)
    with pytest.raises(EmulatorControlError) as caught:
        await control.connect(meeting_id, attendee_id)
    assert caught.value.body["error"]["code"] == "attendee_not_found"

    await control.end_meeting(meeting_id)
    response = httpx.post(
        f"{emulator_url}/_emulator/meetings/{meeting_id}/attendees/{attendee_id}/connect"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "meeting_not_found"
    unknown_action = httpx.post(
        f"{emulator_url}/_emulator/meetings/{meeting_id}/attendees/{attendee_id}/mute"
    )
    assert unknown_action.status_code == 404
    assert unknown_action.json()["error"]["code"] == "not_found"


async def test_an_attendee_record_alone_does_not_keep_a_meeting_alive(
    meetings: Any, control: EmulatorControl
) -> None:
    # The clock also moves in real time: the steps leave a margin of 10 s.
    meeting_id = new_meeting(meetings)["MeetingId"]
    _attendee(meetings, meeting_id)
    await control.advance_clock(290)
    assert meetings.list_attendees(MeetingId=meeting_id)["Attendees"]
    await control.advance_clock(20)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=meeting_id)


async def test_a_connected_attendee_keeps_the_meeting_until_it_leaves(
    meetings: Any, control: EmulatorControl, emulator_url: str
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    first, second = _attendee(meetings, meeting_id, "u1"), _attendee(meetings, meeting_id, "u2")
    await control.connect(meeting_id, first)
    await control.connect(meeting_id, second)
    await control.advance_clock(3600)
    await control.drop(meeting_id, first)
    await control.advance_clock(3600)
    meetings.get_meeting(MeetingId=meeting_id)  # u2 is still connected
    await control.disconnect(meeting_id, second)
    await control.advance_clock(290)
    listed = meetings.list_attendees(MeetingId=meeting_id)["Attendees"]
    assert [a["ExternalUserId"] for a in listed] == ["u1", "u2"], "records outlive the media"
    assert meetings.get_attendee(MeetingId=meeting_id, AttendeeId=first)["Attendee"]
    await control.advance_clock(20)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.list_attendees(MeetingId=meeting_id)
    ended = httpx.get(f"{emulator_url}/_emulator/meetings?include_ended=true").json()["ended"]
    assert [(m["MeetingId"], m["end_reason"]) for m in ended] == [(meeting_id, "idle")]


async def test_deleting_the_last_connected_attendee_starts_the_idle_time(
    meetings: Any, control: EmulatorControl
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    attendee_id = _attendee(meetings, meeting_id)
    await control.connect(meeting_id, attendee_id)
    await control.advance_clock(3600)
    meetings.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee_id)
    assert (await control.live_meetings())[0]["connected_count"] == 0
    await control.advance_clock(290)
    meetings.get_meeting(MeetingId=meeting_id)
    await control.advance_clock(20)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=meeting_id)


async def test_connected_attendees_do_not_outlast_the_maximum_lifetime(
    meetings: Any, control: EmulatorControl
) -> None:
    await control.set_config(meeting_max_seconds=600)
    meeting_id = new_meeting(meetings)["MeetingId"]
    await control.connect(meeting_id, _attendee(meetings, meeting_id))
    await control.advance_clock(610)
    with pytest.raises(meetings.exceptions.NotFoundException):
        meetings.get_meeting(MeetingId=meeting_id)


async def test_meetings_end_in_real_time_without_being_asked_about(
    meetings: Any, control: EmulatorControl
) -> None:
    await control.set_config(meeting_idle_seconds=0.3)
    meeting_id = new_meeting(meetings)["MeetingId"]

    async def ended() -> bool:
        # GET /events never expires meetings itself: only the sweep can end it.
        return "chime:MeetingEnded" in await _event_types(control, meeting_id)

    await wait_until(ended, timeout=10, message="the sweep to end the idle meeting")
    assert await control.live_meetings() == []


async def test_advancing_the_clock_ends_meetings_at_once(
    meetings: Any, control: EmulatorControl
) -> None:
    meeting_id = new_meeting(meetings)["MeetingId"]
    await control.advance_clock(301)
    assert (await _event_types(control, meeting_id))[-1] == "chime:MeetingEnded"
