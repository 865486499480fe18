"""What rooms needs from the outside, as Protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Meeting = dict[str, Any]  # Chime's `Meeting` object, exactly as CreateMeeting returns it
Attendee = dict[str, Any]  # Chime's `Attendee` object, exactly as CreateAttendee returns it


class MeetingGone(Exception):
    """Chime says the meeting does not exist (it ended)."""


class AttendeeRefused(Exception):
    """Chime refused this attendee (e.g. the meeting is at capacity)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class MeetingGateway(Protocol):
    """Chime SDK meetings. Throttling and 5xx that outlive the client's retries
    raise `domain.MeetingUnavailable`."""

    async def create_meeting(
        self, *, request_token: str, external_meeting_id: str, media_region: str
    ) -> Meeting: ...

    async def create_attendees(
        self, meeting_id: str, external_user_ids: Sequence[str]
    ) -> Mapping[str, Attendee | AttendeeRefused]:
        """THE join path: one call for any number of users (CreateAttendee for
        one, BatchCreateAttendee for up to 100). Raises `MeetingGone`."""
        ...

    async def delete_attendee(self, meeting_id: str, attendee_id: str) -> None:
        """Idempotent: an attendee or meeting that is gone is fine."""
        ...

    async def delete_meeting(self, meeting_id: str) -> None:
        """Idempotent: a meeting that is gone is fine."""
        ...
