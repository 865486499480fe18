"""Chime SDK meetings through the process's aiobotocore client.

The client already retries throttling (meetings answer `ThrottlingException`,
which botocore's standard mode backs off on with jitter) and 5xx; what is
left after that becomes `MeetingUnavailable` (503 + Retry-After), never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.logging import get_logger

from ..domain import MeetingUnavailable
from ..ports import Attendee, AttendeeRefused, Meeting, MeetingGone

if TYPE_CHECKING:
    from types_aiobotocore_chime_sdk_meetings import ChimeSDKMeetingsClient

log = get_logger("belfry.rooms")

BATCH_LIMIT = 100
_UNAVAILABLE = {
    "ThrottlingException",
    "ThrottledClientException",
    "ServiceUnavailableException",
    "ServiceFailureException",
    "LimitExceededException",  # account-level meeting limits are transient for a caller
}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(operation: str, exc: Exception) -> MeetingUnavailable:
    log.warning("chime.unavailable", operation=operation, error=repr(exc)[:300])
    return MeetingUnavailable(
        "the meeting service is busy, try again shortly",
        retry_after_seconds=2,
        code="meeting_service_unavailable",
    )


class ChimeMeetingGateway:
    def __init__(self, client: ChimeSDKMeetingsClient) -> None:
        self._client = client

    async def create_meeting(
        self, *, request_token: str, external_meeting_id: str, media_region: str
    ) -> Meeting:
        try:
            response = await self._client.create_meeting(
                ClientRequestToken=request_token,
                ExternalMeetingId=external_meeting_id,
                MediaRegion=media_region,
            )
        except ClientError as exc:
            raise _unavailable("CreateMeeting", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("CreateMeeting", exc) from exc
        meeting: Meeting = dict(response["Meeting"])
        return meeting

    async def create_attendees(
        self, meeting_id: str, external_user_ids: Sequence[str]
    ) -> Mapping[str, Attendee | AttendeeRefused]:
        users = list(dict.fromkeys(external_user_ids))
        if not users:
            return {}
        if len(users) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} attendees per call")
        try:
            if len(users) == 1:
                response: Any = await self._client.create_attendee(
                    MeetingId=meeting_id, ExternalUserId=users[0]
                )
                return {users[0]: dict(response["Attendee"])}
            response = await self._client.batch_create_attendee(
                MeetingId=meeting_id, Attendees=[{"ExternalUserId": u} for u in users]
            )
        except ClientError as exc:
            code = _code(exc)
            if code == "NotFoundException":
                raise MeetingGone(meeting_id) from exc
            if code == "LimitExceededException" and len(users) == 1:
                message = str(exc.response.get("Error", {}).get("Message", ""))
                return {users[0]: AttendeeRefused(code, message)}
            raise _unavailable("CreateAttendee", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("CreateAttendee", exc) from exc
        result: dict[str, Attendee | AttendeeRefused] = {
            a["ExternalUserId"]: dict(a) for a in response.get("Attendees", [])
        }
        for error in response.get("Errors", []):
            result[error["ExternalUserId"]] = AttendeeRefused(
                error.get("ErrorCode", ""), error.get("ErrorMessage", "")
            )
        return result

    async def delete_attendee(self, meeting_id: str, attendee_id: str) -> None:
        try:
            await self._client.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee_id)
        except ClientError as exc:
            if _code(exc) in ("NotFoundException", "BadRequestException"):
                return
            raise _unavailable("DeleteAttendee", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("DeleteAttendee", exc) from exc

    async def delete_meeting(self, meeting_id: str) -> None:
        try:
            await self._client.delete_meeting(MeetingId=meeting_id)
        except ClientError as exc:
            if _code(exc) in ("NotFoundException", "BadRequestException"):
                return
            raise _unavailable("DeleteMeeting", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("DeleteMeeting", exc) from exc
