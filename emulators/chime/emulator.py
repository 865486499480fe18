"""The emulator's composition root: state, clock, limits, faults, counters, sessions.

`Emulator.handle` turns one HTTP request into one HTTP response without
awaiting anything, so on the event loop every operation's state change is
atomic and concurrent requests need no lock. After each request it kicks the
background tasks (`lifecycle.py`): the sweep and the event publisher.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from emulators.chime.calls import Call, Handler
from emulators.chime.clock import AdjustableClock, OffsetClock
from emulators.chime.config import EmulatorConfig
from emulators.chime.errors import IDENTITY, MEETINGS, MESSAGING, ChimeError, Kind, bad_request
from emulators.chime.events import MeetingEvents
from emulators.chime.identity import Identity
from emulators.chime.lifecycle import Background
from emulators.chime.limits import CallCounters, FaultInjector, RateLimiter
from emulators.chime.meetings import Meetings
from emulators.chime.messaging import Messaging
from emulators.chime.routing import Router
from emulators.chime.sessions import SessionHub
from emulators.chime.wire import WireResponse, parse_input, region_of, render_error, render_output

log = logging.getLogger("emulators.chime")


@dataclass(frozen=True)
class ChimeRequest:
    method: str
    raw_path: str
    query: Mapping[str, Sequence[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


def _resource_arn(request: ChimeRequest) -> str | None:
    """The ARN a /tags request is about (the only route all three models share)."""
    if request.query.get("arn"):
        return request.query["arn"][0]
    try:
        document = json.loads(request.body or b"{}")
    except ValueError:
        return None
    arn = document.get("ResourceARN") if isinstance(document, dict) else None
    return arn if isinstance(arn, str) else None


class Emulator:
    def __init__(
        self, *, clock: AdjustableClock | None = None, config: EmulatorConfig | None = None
    ) -> None:
        self.clock: AdjustableClock = clock or OffsetClock()
        self._default_config = dataclasses.replace(config or EmulatorConfig())
        self.router = Router()
        self.hub = SessionHub()
        self.limiter = RateLimiter(self.clock)
        self.faults = FaultInjector()
        self.counters = CallCounters()
        self._build_state()
        self.background = Background(self)

    def _build_state(self) -> None:
        self.config = dataclasses.replace(self._default_config)
        self.identity = Identity(self.config)
        self.events = MeetingEvents(self.config)
        self.meetings = Meetings(self.config, self.events)
        self.messaging = Messaging(self.identity, self.config)
        self.handlers: dict[tuple[str, str], Handler] = {}
        for service, handlers in (
            (IDENTITY, self.identity.handlers()),
            (MEETINGS, self.meetings.handlers()),
            (MESSAGING, self.messaging.handlers()),
        ):
            for name, handler in handlers.items():
                self.handlers[(service, name)] = handler

    def reset(self) -> None:
        """Forget everything: state, config changes, counters, limits, faults, clock offset,
        events (queued ones are not sent); the background tasks stop."""
        self.background.stop()
        self.clock.reset()
        self.limiter.clear()
        self.faults.clear()
        self.counters.reset()
        self.hub.close_all()
        self._build_state()

    async def aclose(self) -> None:
        """Stop the background tasks and close the EventBridge clients."""
        await self.background.aclose()

    def now(self) -> float:
        """The emulator's time, with Chime's millisecond precision."""
        return round(self.clock.now(), 3)

    def sweep(self) -> None:
        """End every meeting whose idle time or lifetime has run out."""
        self.meetings.expire(self.now())

    def kick(self) -> None:
        """Start the background tasks that have work (only within a running event loop)."""
        self.background.kick()

    def handle(self, request: ChimeRequest) -> WireResponse:
        try:
            return self._handle(request)
        finally:
            self.kick()

    def _handle(self, request: ChimeRequest) -> WireResponse:
        request_id = str(uuid.uuid4())
        resource_arn = _resource_arn(request) if request.raw_path.rstrip("/") == "/tags" else None
        match = self.router.match(request.method, request.raw_path, request.query, resource_arn)
        if match is None:
            error = ChimeError(
                Kind.UNKNOWN_OPERATION,
                f"No Chime SDK operation matches {request.method} {request.raw_path} "
                "(Belfry Chime emulator)",
            )
            return render_error(error, None, request_id)
        op = match.operation
        self.counters.record("calls", op.name)
        if not self.limiter.allow(op.name):
            self.counters.record("throttled", op.name)
            error = ChimeError(Kind.THROTTLED, f"Rate exceeded for {op.name}")
            return render_error(error, op.service, request_id)
        fault = self.faults.draw(op.name)
        if fault is not None:
            self.counters.record("faulted", op.name)
            kind = Kind.SERVICE_UNAVAILABLE if fault == 503 else Kind.SERVICE_FAILURE
            error = ChimeError(kind, f"Injected fault for {op.name} (Belfry Chime emulator)")
            return render_error(error, op.service, request_id)
        try:
            handler = self.handlers.get((op.service, op.name))
            if handler is None:
                raise bad_request(
                    f"Operation {op.name} ({op.service}) is not implemented by the "
                    "Belfry Chime emulator"
                )
            params = parse_input(op, match.labels, request.query, request.headers, request.body)
            call = Call(
                operation=op.name,
                input=params,
                now=self.now(),
                region=region_of(request.headers),
                host=request.headers.get("host", "127.0.0.1"),
            )
            result = handler(call)
        except ChimeError as refused:
            self.counters.record("failed", op.name)
            return render_error(refused, op.service, request_id)
        except Exception:
            log.exception("chime.handler_failed operation=%s", op.name)
            self.counters.record("failed", op.name)
            bug = ChimeError(Kind.SERVICE_FAILURE, f"Internal error in {op.name} (emulator bug)")
            return render_error(bug, op.service, request_id)
        for event in call.events:
            self.hub.publish(event)
        self.counters.record("succeeded", op.name)
        return render_output(op, result, request_id)
