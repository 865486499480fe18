"""Chime SDK meetings through the process's aiobotocore client.

Every request first takes its slot of the account-wide budget (`shared.budget`,
installed on the client); a join that gets none before its deadline answers
503 `chime_busy`. The client retries throttling (meetings answer
`ThrottlingException`, which botocore's standard mode backs off on) and 5xx;
what is left becomes `MeetingUnavailable` (503 + Retry-After), never a 500.
Attendees are always created with BatchCreateAttendee: a full meeting is a
per-attendee error there, answered 409 at once, where CreateAttendee's
LimitExceededException would be retried as throttling for seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.budget import BudgetExhausted, chime_busy
from shared.logging import get_logger

from ..domain import MeetingUnavailable
from ..ports import Attendee, AttendeeRefused, Meeting, MeetingGone

if TYPE_CHECKING:
    from types_aiobotocore_chime_sdk_meetings import ChimeSDKMeetingsClient

log = get_logger("belfry.rooms")

BATCH_LIMIT = 100  # BatchCreateAttendee's Attendees limit


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.asynccontextmanager
async def _chime(operation: str, *, gone_ok: bool = False) -> AsyncIterator[None]:
    """Chime's failures as the domain's: NotFound is `MeetingGone` (or nothing,
    for a delete), no budget is `chime_busy`, the rest a 503."""
    try:
        yield
    except ClientError as exc:
        if _code(exc) in ("NotFoundException", "BadRequestException") and gone_ok:
            return
        if _code(exc) == "NotFoundException":
            raise MeetingGone(operation) from exc
        raise _unavailable(operation, exc) from exc
    except BotoCoreError as exc:
        raise _unavailable(operation, exc) from exc
    except BudgetExhausted as exc:
        raise chime_busy(exc) from exc


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
        async with _chime("CreateMeeting"):
            response = await self._client.create_meeting(
                ClientRequestToken=request_token,
                ExternalMeetingId=external_meeting_id,
                MediaRegion=media_region,
            )
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
        response: Any
        async with _chime("BatchCreateAttendee"):
            response = await self._client.batch_create_attendee(
                MeetingId=meeting_id, Attendees=[{"ExternalUserId": u} for u in users]
            )
        result: dict[str, Attendee | AttendeeRefused] = {
            a["ExternalUserId"]: dict(a) for a in response.get("Attendees", [])
        }
        for error in response.get("Errors", []):
            result[error["ExternalUserId"]] = AttendeeRefused(
                error.get("ErrorCode", ""), error.get("ErrorMessage", "")
            )
        return result

    async def delete_attendee(self, meeting_id: str, attendee_id: str) -> None:
        async with _chime("DeleteAttendee", gone_ok=True):
            await self._client.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee_id)

    async def delete_meeting(self, meeting_id: str) -> None:
        async with _chime("DeleteMeeting", gone_ok=True):
            await self._client.delete_meeting(MeetingId=meeting_id)
