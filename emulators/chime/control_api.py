"""The control API under /_emulator/: what tests and operators use to steer the emulator.

Errors are JSON in Belfry's shape: {"error": {"code": ..., "message": ...}}.
Every call kicks the emulator's background tasks (sweep, event publisher).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulators.chime.emulator import Emulator
from emulators.chime.limits import Fault, Rate


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return await request.json()
    except ValueError as exc:
        raise ValueError("the body is not valid JSON") from exc


def _parse_limits(body: Any) -> tuple[Rate | None, dict[str, Rate]]:
    if not isinstance(body, dict):
        raise ValueError("limits must be a JSON object")
    default = body.get("default")
    operations = body.get("operations") or {}
    if not isinstance(operations, dict):
        raise ValueError("operations must be an object of operation name -> {rate, burst}")
    return (
        Rate.parse(default, "default") if default is not None else None,
        {name: Rate.parse(raw, f"operations.{name}") for name, raw in operations.items()},
    )


def _parse_faults(body: Any) -> tuple[int | None, Fault | None, dict[str, Fault]]:
    if not isinstance(body, dict):
        raise ValueError("faults must be a JSON object")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed must be an integer")
    default = body.get("default")
    operations = body.get("operations") or {}
    if not isinstance(operations, dict):
        raise ValueError("operations must be an object of operation name -> {share, statuses}")
    return (
        seed,
        Fault.parse(default, "default") if default is not None else None,
        {name: Fault.parse(raw, f"operations.{name}") for name, raw in operations.items()},
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def control_routes(emulator: Emulator) -> list[BaseRoute]:  # noqa: PLR0915
    known_operations = {name for _, name in emulator.router.operations}

    def unknown_operations(names: dict[str, Any]) -> list[str]:
        return sorted(set(names) - known_operations)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse({"reset": True})

    async def counters(request: Request) -> Response:
        return JSONResponse(emulator.counters.as_json())

    async def reset_counters(request: Request) -> Response:
        emulator.counters.reset()
        return JSONResponse(emulator.counters.as_json())

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _json_body(request)
                seconds = body.get("advance_seconds") if isinstance(body, dict) else None
                if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                    raise ValueError("advance_seconds must be a number")
                emulator.clock.advance(float(seconds))
            except ValueError as exc:
                return _error(400, "invalid_clock", str(exc))
            emulator.sweep()  # what the move ended, ends now
        return JSONResponse({"now": emulator.clock.now()})

    async def config(request: Request) -> Response:
        if request.method == "PUT":
            try:
                emulator.config.update(await _json_body(request))
            except ValueError as exc:
                return _error(400, "invalid_config", str(exc))
        return JSONResponse(emulator.config.as_json())

    async def meetings(request: Request) -> Response:
        now = emulator.clock.now()
        body: dict[str, Any] = {"meetings": emulator.meetings.live_summaries(now)}
        if request.query_params.get("include_ended") == "true":
            body["ended"] = [m.summary() for m in emulator.meetings.ended.values()]
        return JSONResponse(body)

    async def end_meeting(request: Request) -> Response:
        meeting_id = request.path_params["meeting_id"]
        now = emulator.now()
        meeting = emulator.meetings.find_live(meeting_id, now)
        if meeting is None:
            return _error(404, "meeting_not_found", f"no live meeting {meeting_id}")
        emulator.meetings.end(meeting, now, "ended_by_control_api")
        return JSONResponse(meeting.summary())

    def media(action: str) -> Endpoint:
        async def run(request: Request) -> Response:
            return play_media(request, action)

        return run

    def play_media(request: Request, action: str) -> Response:
        """What the Chime JS SDK does in a browser: connect, disconnect, drop."""
        meeting_id = request.path_params["meeting_id"]
        attendee_id = request.path_params["attendee_id"]
        now = emulator.now()
        meeting = emulator.meetings.find_live(meeting_id, now)
        if meeting is None:
            return _error(404, "meeting_not_found", f"no live meeting {meeting_id}")
        attendee = meeting.attendees.get(attendee_id)
        if attendee is None:
            message = f"no attendee {attendee_id} in meeting {meeting_id}"
            return _error(404, "attendee_not_found", message)
        if action == "connect":
            emulator.meetings.connect(meeting, attendee, now)
        else:
            emulator.meetings.disconnect(meeting, attendee, now, dropped=action == "drop")
        return JSONResponse(
            {
                "MeetingId": meeting.meeting_id,
                "AttendeeId": attendee.attendee_id,
                "ExternalUserId": attendee.external_user_id,
                "connected": attendee.connected,
            }
        )

    async def events(request: Request) -> Response:
        return JSONResponse(emulator.events.as_json())

    async def limits(request: Request) -> Response:
        if request.method == "PUT":
            try:
                default, operations = _parse_limits(await _json_body(request))
            except ValueError as exc:
                return _error(400, "invalid_limits", str(exc))
            if unknown := unknown_operations(operations):
                return _error(400, "unknown_operation", f"unknown operations: {unknown}")
            emulator.limiter.configure(default, operations)
        elif request.method == "DELETE":
            emulator.limiter.clear()
        return JSONResponse(emulator.limiter.as_json())

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                seed, default, operations = _parse_faults(await _json_body(request))
            except ValueError as exc:
                return _error(400, "invalid_faults", str(exc))
            if unknown := unknown_operations(operations):
                return _error(400, "unknown_operation", f"unknown operations: {unknown}")
            emulator.faults.configure(seed, default, operations)
        elif request.method == "DELETE":
            emulator.faults.clear()
        return JSONResponse(emulator.faults.as_json())

    def channel_view(arn: str) -> dict[str, Any]:
        channel = emulator.messaging.channels[arn]
        return {
            "ChannelArn": channel.arn,
            "Name": channel.name,
            "Mode": channel.mode,
            "Privacy": channel.privacy,
            "members": sorted(channel.memberships),
            "moderators": sorted(channel.moderators),
            "message_count": len(channel.messages),
        }

    async def channels(request: Request) -> Response:
        return JSONResponse({"channels": [channel_view(a) for a in emulator.messaging.channels]})

    async def channel(request: Request) -> Response:
        arn = request.path_params["channel_arn"]
        if arn not in emulator.messaging.channels:
            return _error(404, "channel_not_found", f"no channel {arn}")
        return JSONResponse(channel_view(arn))

    async def sessions(request: Request) -> Response:
        return JSONResponse({"sessions": emulator.hub.connected()})

    async def not_found(request: Request) -> Response:
        return _error(404, "not_found", f"no control endpoint {request.method} {request.url.path}")

    def kicking(endpoint: Endpoint) -> Endpoint:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            finally:
                emulator.kick()

        return run

    attendee_path = "/meetings/{meeting_id}/attendees/{attendee_id}"
    routes: list[tuple[str, Endpoint, list[str]]] = [
        ("/health", health, ["GET"]),
        ("/reset", reset, ["POST"]),
        ("/counters", counters, ["GET"]),
        ("/counters/reset", reset_counters, ["POST"]),
        ("/clock", clock, ["GET", "POST"]),
        ("/config", config, ["GET", "PUT"]),
        ("/meetings", meetings, ["GET"]),
        ("/meetings/{meeting_id}/end", end_meeting, ["POST"]),
        (f"{attendee_path}/connect", media("connect"), ["POST"]),
        (f"{attendee_path}/disconnect", media("disconnect"), ["POST"]),
        (f"{attendee_path}/drop", media("drop"), ["POST"]),
        ("/events", events, ["GET"]),
        ("/limits", limits, ["GET", "PUT", "DELETE"]),
        ("/faults", faults, ["GET", "PUT", "DELETE"]),
        ("/channels", channels, ["GET"]),
        ("/channels/{channel_arn:path}", channel, ["GET"]),
        ("/sessions", sessions, ["GET"]),
        ("/{path:path}", not_found, ["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    return [Route(path, kicking(endpoint), methods=methods) for path, endpoint, methods in routes]
