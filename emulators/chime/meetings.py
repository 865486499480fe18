"""chime-sdk-meetings: meetings that end by themselves, and their attendees.

An attendee record (CreateAttendee) is what a client needs to join; the
media side, what the Chime JS SDK does in a browser, is played through the
control API: an attendee connects, disconnects or drops. A meeting ends
`meeting_idle_seconds` after its last connected attendee went (or after it was
created, if nobody connected), `meeting_max_seconds` after it started, on
DeleteMeeting, or when the control API ends it. After that every call that
names it answers NotFoundException, as Chime does. Every change is also a
lifecycle event (`events.py`).
"""

from __future__ import annotations

import base64
import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulators.chime.calls import Call, Handler, Output, paginate
from emulators.chime.config import EmulatorConfig
from emulators.chime.errors import ChimeError, Kind, bad_request, not_found
from emulators.chime.events import (
    ATTENDEE_ADDED,
    ATTENDEE_DELETED,
    ATTENDEE_DROPPED,
    ATTENDEE_JOINED,
    ATTENDEE_LEFT,
    MEETING_ENDED,
    MEETING_STARTED,
    MeetingEvents,
)
from emulators.chime.placement import MEDIA_REGIONS, media_placement

DEFAULT_CAPABILITIES = {"Audio": "SendReceive", "Video": "SendReceive", "Content": "SendReceive"}


@dataclass
class Attendee:
    attendee_id: str
    external_user_id: str
    join_token: str
    capabilities: dict[str, str]
    seq: int  # creation order, for ListAttendees
    connected: bool = False  # the media side: is a client in the meeting?

    def output(self) -> Output:
        return {
            "ExternalUserId": self.external_user_id,
            "AttendeeId": self.attendee_id,
            "JoinToken": self.join_token,
            "Capabilities": dict(self.capabilities),
        }


@dataclass
class Meeting:
    meeting_id: str
    arn: str
    region: str  # of the request that created it
    request: dict[str, Any]
    placement: Output
    created: float
    idle_since: float | None
    attendees: dict[str, Attendee] = field(default_factory=dict)
    by_user: dict[str, str] = field(default_factory=dict)
    ended_at: float | None = None
    end_reason: str | None = None
    last_event_ms: int = 0  # timestamp of its latest lifecycle event

    @property
    def connected_count(self) -> int:
        return sum(1 for a in self.attendees.values() if a.connected)

    def output(self) -> Output:
        meeting: Output = {
            "MeetingId": self.meeting_id,
            "ExternalMeetingId": self.request["ExternalMeetingId"],
            "MediaRegion": self.request["MediaRegion"],
            "MediaPlacement": dict(self.placement),
            "MeetingArn": self.arn,
        }
        for name in ("MeetingHostId", "MeetingFeatures", "PrimaryMeetingId", "TenantIds"):
            if name in self.request:
                meeting[name] = self.request[name]
        return meeting

    def summary(self) -> Output:
        return {
            "MeetingId": self.meeting_id,
            "ExternalMeetingId": self.request["ExternalMeetingId"],
            "MediaRegion": self.request["MediaRegion"],
            "attendee_count": len(self.attendees),
            "connected_count": self.connected_count,
            "created_at": self.created,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
        }


class Meetings:
    def __init__(self, config: EmulatorConfig, events: MeetingEvents) -> None:
        self._config = config
        self._events = events
        self.live: dict[str, Meeting] = {}
        self.ended: dict[str, Meeting] = {}
        self._tokens: dict[str, str] = {}
        self._attendee_seq = itertools.count()

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateMeeting": self.create_meeting,
            "CreateMeetingWithAttendees": self.create_meeting_with_attendees,
            "GetMeeting": self.get_meeting,
            "DeleteMeeting": self.delete_meeting,
            "CreateAttendee": self.create_attendee,
            "BatchCreateAttendee": self.batch_create_attendee,
            "GetAttendee": self.get_attendee,
            "ListAttendees": self.list_attendees,
            "DeleteAttendee": self.delete_attendee,
        }

    # Life and death of meetings.

    def end(self, meeting: Meeting, at: float, reason: str) -> None:
        if meeting.ended_at is not None:
            return
        meeting.ended_at, meeting.end_reason = at, reason
        self.live.pop(meeting.meeting_id, None)
        self.ended[meeting.meeting_id] = meeting
        self._events.emit(MEETING_ENDED, meeting, at)

    def expire(self, now: float) -> None:
        """End every meeting whose idle time or lifetime has run out by `now`."""
        for meeting in list(self.live.values()):
            self._check_expiry(meeting, now)

    def _check_expiry(self, meeting: Meeting, now: float) -> bool:
        lifetime_end = meeting.created + self._config.meeting_max_seconds
        idle_end = (
            meeting.idle_since + self._config.meeting_idle_seconds
            if meeting.idle_since is not None
            else None
        )
        if idle_end is not None and idle_end <= now and idle_end < lifetime_end:
            self.end(meeting, idle_end, "idle")
            return True
        if lifetime_end <= now:
            self.end(meeting, lifetime_end, "max_duration")
            return True
        return False

    def find_live(self, meeting_id: str, now: float) -> Meeting | None:
        meeting = self.live.get(meeting_id)
        if meeting is None or self._check_expiry(meeting, now):
            return None
        return meeting

    def live_meeting(self, meeting_id: str, now: float) -> Meeting:
        meeting = self.find_live(meeting_id, now)
        if meeting is None:
            raise not_found(f"The meeting {meeting_id} does not exist or has ended")
        return meeting

    def live_summaries(self, now: float) -> list[Output]:
        self.expire(now)
        return [m.summary() for m in sorted(self.live.values(), key=lambda m: m.created)]

    # Meetings.

    def _create(self, call: Call) -> Meeting:
        token = call.input["ClientRequestToken"]
        known = self._tokens.get(token)
        if known is not None and known in self.live:
            meeting = self.live[known]
            if not self._check_expiry(meeting, call.now):
                return meeting
        region = call.input["MediaRegion"]
        if region not in MEDIA_REGIONS:
            raise bad_request(f"MediaRegion {region} is not a Chime SDK media region")
        meeting_id = str(uuid.uuid4())
        meeting = Meeting(
            meeting_id=meeting_id,
            arn=f"arn:aws:chime:{call.region}:{self._config.account_id}:meeting/{meeting_id}",
            region=call.region,
            request=dict(call.input),
            placement=media_placement(meeting_id, region),
            created=call.now,
            idle_since=call.now,
        )
        self.live[meeting_id] = meeting
        self._tokens[token] = meeting_id
        self._events.emit(MEETING_STARTED, meeting, call.now)
        return meeting

    def create_meeting(self, call: Call) -> Output:
        return {"Meeting": self._create(call).output()}

    def create_meeting_with_attendees(self, call: Call) -> Output:
        meeting = self._create(call)
        attendees, errors = self._add_attendees(meeting, call.input["Attendees"], call.now)
        return {"Meeting": meeting.output(), "Attendees": attendees, "Errors": errors}

    def get_meeting(self, call: Call) -> Output:
        return {"Meeting": self.live_meeting(call.input["MeetingId"], call.now).output()}

    def delete_meeting(self, call: Call) -> Output:
        meeting = self.live_meeting(call.input["MeetingId"], call.now)
        self.end(meeting, call.now, "deleted")
        return {}

    # Attendees.

    def _add_attendee(self, meeting: Meeting, request: dict[str, Any], now: float) -> Attendee:
        external_user_id = request["ExternalUserId"]
        existing = meeting.by_user.get(external_user_id)
        if existing is not None:
            # Chime hands a user who is created again their existing attendee.
            return meeting.attendees[existing]
        if len(meeting.attendees) >= self._config.meeting_max_attendees:
            raise ChimeError(
                Kind.LIMIT_EXCEEDED,
                f"The meeting {meeting.meeting_id} has reached its attendee capacity",
            )
        attendee_id = str(uuid.uuid4())
        secret = f"{attendee_id}:{secrets.token_hex(24)}".encode()
        attendee = Attendee(
            attendee_id=attendee_id,
            external_user_id=external_user_id,
            join_token=base64.b64encode(secret).decode(),
            capabilities=dict(request.get("Capabilities") or DEFAULT_CAPABILITIES),
            seq=next(self._attendee_seq),
        )
        meeting.attendees[attendee_id] = attendee
        meeting.by_user[external_user_id] = attendee_id
        self._events.emit(ATTENDEE_ADDED, meeting, now, attendee)
        return attendee

    def _add_attendees(
        self, meeting: Meeting, requests: list[dict[str, Any]], now: float
    ) -> tuple[list[Output], list[Output]]:
        created: list[Output] = []
        errors: list[Output] = []
        for request in requests:
            try:
                created.append(self._add_attendee(meeting, request, now).output())
            except ChimeError as exc:
                errors.append(
                    {
                        "ExternalUserId": request["ExternalUserId"],
                        "ErrorCode": exc.kind.value,
                        "ErrorMessage": exc.message,
                    }
                )
        return created, errors

    def create_attendee(self, call: Call) -> Output:
        meeting = self.live_meeting(call.input["MeetingId"], call.now)
        return {"Attendee": self._add_attendee(meeting, call.input, call.now).output()}

    def batch_create_attendee(self, call: Call) -> Output:
        meeting = self.live_meeting(call.input["MeetingId"], call.now)
        attendees, errors = self._add_attendees(meeting, call.input["Attendees"], call.now)
        return {"Attendees": attendees, "Errors": errors}

    def _attendee(self, call: Call) -> tuple[Meeting, Attendee]:
        meeting = self.live_meeting(call.input["MeetingId"], call.now)
        attendee = meeting.attendees.get(call.input["AttendeeId"])
        if attendee is None:
            raise not_found(f"The attendee {call.input['AttendeeId']} does not exist")
        return meeting, attendee

    def get_attendee(self, call: Call) -> Output:
        return {"Attendee": self._attendee(call)[1].output()}

    def list_attendees(self, call: Call) -> Output:
        meeting = self.live_meeting(call.input["MeetingId"], call.now)
        page, token = paginate(
            list(meeting.attendees.values()),
            call,
            key=lambda a: a.seq,
            scope=f"attendees:{meeting.meeting_id}",
            default_max=100,
        )
        output: Output = {"Attendees": [a.output() for a in page]}
        if token:
            output["NextToken"] = token
        return output

    def delete_attendee(self, call: Call) -> Output:
        meeting, attendee = self._attendee(call)
        self.disconnect(meeting, attendee, call.now)
        del meeting.attendees[attendee.attendee_id]
        del meeting.by_user[attendee.external_user_id]
        self._events.emit(ATTENDEE_DELETED, meeting, call.now, attendee)
        return {}

    # The media side (the control API plays the client).

    def connect(self, meeting: Meeting, attendee: Attendee, now: float) -> bool:
        """The attendee's client joins the media; False if it already had."""
        if attendee.connected:
            return False
        attendee.connected = True
        meeting.idle_since = None
        self._events.emit(ATTENDEE_JOINED, meeting, now, attendee, networkType="Normal")
        return True

    def disconnect(
        self, meeting: Meeting, attendee: Attendee, now: float, *, dropped: bool = False
    ) -> bool:
        """The attendee's client leaves (or loses) the media; False if it was not in."""
        if not attendee.connected:
            return False
        attendee.connected = False
        self._events.emit(ATTENDEE_DROPPED if dropped else ATTENDEE_LEFT, meeting, now, attendee)
        if meeting.connected_count == 0:
            meeting.idle_since = now
        return True
