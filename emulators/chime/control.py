"""A typed async client for the emulator's control API (/_emulator/...).

async with EmulatorControl("http://127.0.0.1:9911") as control:
    await control.reset()
    await control.advance_clock(301)
    assert (await control.counters())["calls"].get("CreateMeeting") == 1
"""

from __future__ import annotations

import enum
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, cast
from urllib.parse import quote

import httpx


class Counters(TypedDict):
    calls: dict[str, int]
    succeeded: dict[str, int]
    failed: dict[str, int]
    throttled: dict[str, int]
    faulted: dict[str, int]


class LiveMeeting(TypedDict):
    MeetingId: str
    ExternalMeetingId: str
    MediaRegion: str
    attendee_count: int  # attendee records
    connected_count: int  # attendees whose client is connected
    created_at: float
    ended_at: float | None
    end_reason: str | None


class AttendeeState(TypedDict):
    MeetingId: str
    AttendeeId: str
    ExternalUserId: str
    connected: bool


class EventStats(TypedDict):
    published: int
    pending: int
    dropped: int
    failed_attempts: int
    # The last 200 events as EventBridge delivers them: {"version", "id",
    # "detail-type", "source", "account", "time", "region", "resources", "detail"}.
    recent: list[dict[str, Any]]


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET: Literal[_Unset.UNSET] = _Unset.UNSET


class RateLimit(TypedDict):
    rate: float
    burst: float


class FaultRule(TypedDict, total=False):
    share: float
    statuses: list[int]


class ChannelView(TypedDict):
    ChannelArn: str
    Name: str
    Mode: str
    Privacy: str
    members: list[str]
    moderators: list[str]
    message_count: int


class EmulatorControlError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"control API answered {status}: {body}")
        self.status = status
        self.body = body


class EmulatorControl:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._http.request(method, f"/_emulator{path}", json=body)
        document = response.json()
        if response.status_code >= 400:
            raise EmulatorControlError(response.status_code, document)
        return document

    async def health(self) -> bool:
        return bool((await self._call("GET", "/health")).get("status") == "ok")

    async def reset(self) -> None:
        """Forget all state, config changes, counters, limits and faults; undo clock moves."""
        await self._call("POST", "/reset")

    async def counters(self) -> Counters:
        return cast(Counters, await self._call("GET", "/counters"))

    async def reset_counters(self) -> None:
        await self._call("POST", "/counters/reset")

    async def now(self) -> float:
        return float((await self._call("GET", "/clock"))["now"])

    async def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward; returns its new time (epoch seconds)."""
        return float((await self._call("POST", "/clock", {"advance_seconds": seconds}))["now"])

    async def config(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._call("GET", "/config"))

    async def set_config(
        self,
        *,
        meeting_idle_seconds: float | None = None,
        meeting_max_seconds: float | None = None,
        meeting_max_attendees: int | None = None,
        messaging_endpoint: str | None = None,
        events_endpoint: str | Literal[_Unset.UNSET] | None = UNSET,
        event_bus_name: str | None = None,
    ) -> dict[str, Any]:
        """Change the given settings; `events_endpoint=None` turns publishing off."""
        changes = {
            "meeting_idle_seconds": meeting_idle_seconds,
            "meeting_max_seconds": meeting_max_seconds,
            "meeting_max_attendees": meeting_max_attendees,
            "messaging_endpoint": messaging_endpoint,
            "event_bus_name": event_bus_name,
        }
        body: dict[str, Any] = {name: value for name, value in changes.items() if value is not None}
        if events_endpoint is not UNSET:
            body["events_endpoint"] = events_endpoint
        return cast(dict[str, Any], await self._call("PUT", "/config", body))

    async def end_meeting(self, meeting_id: str) -> LiveMeeting:
        """End a live meeting now, as Chime does when it has been idle."""
        return cast(LiveMeeting, await self._call("POST", f"/meetings/{meeting_id}/end"))

    async def live_meetings(self) -> list[LiveMeeting]:
        return cast(list[LiveMeeting], (await self._call("GET", "/meetings"))["meetings"])

    async def _media(self, meeting_id: str, attendee_id: str, action: str) -> AttendeeState:
        path = f"/meetings/{meeting_id}/attendees/{attendee_id}/{action}"
        return cast(AttendeeState, await self._call("POST", path))

    async def connect(self, meeting_id: str, attendee_id: str) -> AttendeeState:
        """The attendee's client joins the meeting's media (chime:AttendeeJoined)."""
        return await self._media(meeting_id, attendee_id, "connect")

    async def disconnect(self, meeting_id: str, attendee_id: str) -> AttendeeState:
        """The attendee's client leaves the meeting (chime:AttendeeLeft)."""
        return await self._media(meeting_id, attendee_id, "disconnect")

    async def drop(self, meeting_id: str, attendee_id: str) -> AttendeeState:
        """The attendee's connection is lost (chime:AttendeeDropped)."""
        return await self._media(meeting_id, attendee_id, "drop")

    async def events(self) -> EventStats:
        """Publishing counters and the most recent meeting lifecycle events."""
        return cast(EventStats, await self._call("GET", "/events"))

    async def set_limits(
        self,
        *,
        default: RateLimit | None = None,
        operations: dict[str, RateLimit] | None = None,
    ) -> dict[str, Any]:
        """Turn on token-bucket rate limits (Chime's default: rate 10, burst 20 per API)."""
        body = {"default": default, "operations": operations or {}}
        return cast(dict[str, Any], await self._call("PUT", "/limits", body))

    async def clear_limits(self) -> None:
        await self._call("DELETE", "/limits")

    async def set_faults(
        self,
        *,
        seed: int | None = None,
        default: FaultRule | None = None,
        operations: dict[str, FaultRule] | None = None,
    ) -> dict[str, Any]:
        """Answer a share of calls with 500 ServiceFailure / 503 ServiceUnavailable."""
        body = {"seed": seed, "default": default, "operations": operations or {}}
        return cast(dict[str, Any], await self._call("PUT", "/faults", body))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def channels(self) -> list[ChannelView]:
        return cast(list[ChannelView], (await self._call("GET", "/channels"))["channels"])

    async def channel(self, channel_arn: str) -> ChannelView:
        path = f"/channels/{quote(channel_arn, safe='')}"
        return cast(ChannelView, await self._call("GET", path))

    async def sessions(self) -> dict[str, int]:
        """Connected messaging sessions per AppInstanceUser ARN."""
        return cast(dict[str, int], (await self._call("GET", "/sessions"))["sessions"])
