"""Who is really in a room: Chime's meeting events (EventBridge -> SQS) move
each attendee's presence, the room's count of connected attendees, and end
the room's meeting when Chime ends it.

The messages of one receive are grouped by meeting; each group is read once
(the meeting's room, its attendees' presence), applied in Chime's order, and
written in one transaction on condition that nothing read has moved (another
poller, another replica): if it has, the group is read and applied again. A
message is deleted only after its group committed. One that is not a Chime
meeting event is made visible again at once, so the queue's redrive policy
moves it to the dead-letter queue after its receive count; one whose group
fails is left for the visibility timeout to bring back. Events of a meeting
rooms did not create, of an attendee it does not know, and of a kind that
does not move presence are logged and deleted.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from shared.events import AttendeePresenceChanged, Envelope, MeetingEnded
from shared.logging import get_logger, log_context
from shared.metrics import Counter, Histogram

from .chime_events import (
    IGNORED,
    MEETING_ENDED,
    PRESENCE,
    BadMeetingEvent,
    MeetingEvent,
    PresenceChange,
    PresenceRecord,
    advance,
    parse,
)
from .domain import Room, announce, room_busy
from .ports import Delivery, MeetingEventQueue, MeetingRef, PresenceWrite, RoomStore

log = get_logger("belfry.rooms")

MEETING_EVENTS = Counter(
    "belfry_rooms_meeting_events_total",
    "Chime meeting events taken off the queue, by outcome.",
    ["outcome"],
)
EVENT_LAG = Histogram(
    "belfry_rooms_meeting_event_lag_seconds",
    "From Chime's event timestamp to its change committed in rooms.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)


@dataclass
class _Outcome:
    changes: dict[str, PresenceChange] = field(default_factory=dict)  # by attendee
    events: list[Envelope] = field(default_factory=list)
    count: int = 0
    ended: bool = False


class Presence:
    def __init__(self, store: RoomStore, queue: MeetingEventQueue, *, attempts: int = 8) -> None:
        self.store = store
        self.queue = queue
        self.attempts = attempts
        self.last_poll = time.monotonic()  # when a receive last answered
        self._failures = 0

    # --- the poller ------------------------------------------------------------

    async def poll(self) -> float | None:
        """One receive (a long poll), handled. When the queue cannot be reached:
        how long to wait before the next (growing to 30 s), so a poller never spins."""
        try:
            deliveries = await self.queue.receive()
        except Exception as exc:
            self._failures += 1
            log.warning("meeting_events.receive_failed", error=repr(exc), failures=self._failures)
            return float(min(30.0, 0.5 * 2 ** min(self._failures, 6)))
        self._failures = 0
        self.last_poll = time.monotonic()
        if deliveries:
            await self.handle(deliveries)
        return None

    def polled_within(self, seconds: float) -> bool:
        """The last receive answered, and not longer ago than `seconds`."""
        return self._failures == 0 and time.monotonic() - self.last_poll <= seconds

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        groups: dict[str, list[tuple[Delivery, MeetingEvent]]] = {}
        for delivery in deliveries:
            try:
                event = parse(delivery.body)
            except BadMeetingEvent as exc:
                MEETING_EVENTS.labels("rejected").inc()
                log.warning(
                    "meeting_event.rejected",
                    reason=exc.reason,
                    error=str(exc),
                    message_id=delivery.message_id,
                    receive_count=delivery.receive_count,
                )
                await self.queue.retry_soon(delivery)
                continue
            groups.setdefault(event.meeting_id, []).append((delivery, event))
        done = await asyncio.gather(
            *(self._group(meeting_id, group) for meeting_id, group in groups.items())
        )
        await self.queue.delete([d for handled in done for d in handled])

    async def _group(
        self, meeting_id: str, group: list[tuple[Delivery, MeetingEvent]]
    ) -> list[Delivery]:
        # Chime's event id is the correlation id of what its change announces.
        with log_context(correlation_id=group[0][1].event_id, meeting_id=meeting_id):
            try:
                await self.apply(meeting_id, [event for _, event in group])
            except Exception as exc:
                MEETING_EVENTS.labels("failed").inc(len(group))
                log.error("meeting_event.failed", error=repr(exc))
                return []  # back after the visibility timeout; the DLQ after maxReceiveCount
        return [delivery for delivery, _ in group]

    # --- the use case ------------------------------------------------------------

    async def apply(self, meeting_id: str, events: Sequence[MeetingEvent]) -> None:
        """Chime's events of one meeting, applied once each and in Chime's order,
        whatever order and however often they arrive."""
        for attempt in range(self.attempts):
            if await self._apply_once(meeting_id, events):
                return
            await asyncio.sleep(random.uniform(0, 0.02 * 2**attempt))
        raise room_busy()

    async def _apply_once(self, meeting_id: str, events: Sequence[MeetingEvent]) -> bool:
        attendee_ids = [e.attendee_id for e in events if e.attendee_id is not None]
        meeting, records = await self.store.meeting_presence(meeting_id, attendee_ids)
        if meeting is None:
            MEETING_EVENTS.labels("unknown_meeting").inc(len(events))
            log.info("meeting_event.unknown_meeting", meeting_id=meeting_id)
            return True
        room = await self.store.room(meeting.room_id)
        if room is None:
            MEETING_EVENTS.labels("unknown_meeting").inc(len(events))
            return True
        outcome = self._decide(room, meeting, records, events)
        if not outcome.changes and not outcome.ended:
            return True
        current = room.meeting_id == meeting_id
        count_moves = current and outcome.count != room.attendee_count
        end_meeting = current and outcome.ended
        if count_moves:
            shown = replace(
                room, attendee_count=outcome.count, presence_version=room.presence_version + 1
            )
            outcome.events.append(announce(shown.updated()))
        write = PresenceWrite(
            room=room,
            meeting_id=meeting_id,
            changes=list(outcome.changes.values()),
            attendee_count=outcome.count if count_moves or end_meeting else None,
            end_meeting=end_meeting,
            meeting_ended=outcome.ended,
            events=outcome.events,
        )
        if not await self.store.save_presence(write):
            return False  # something read has moved: read and apply again
        now = time.time()
        for event in events:
            EVENT_LAG.observe(max(0.0, now - event.timestamp_ms / 1000))
        MEETING_EVENTS.labels("applied").inc(len(events))
        log.info(
            "meeting_event.applied",
            room_id=room.room_id,
            meeting_id=meeting_id,
            attendees=len(outcome.changes),
            attendee_count=outcome.count,
            meeting_ended=write.end_meeting,
        )
        return True

    def _decide(
        self,
        room: Room,
        meeting: MeetingRef,
        records: dict[str, PresenceRecord],
        events: Sequence[MeetingEvent],
    ) -> _Outcome:
        """What the events do, in Chime's order, to what was read."""
        current = room.meeting_id == meeting.meeting_id and not meeting.ended
        outcome = _Outcome(count=room.attendee_count)
        for event in sorted(events, key=lambda e: e.order):
            if event.event_type == MEETING_ENDED:
                if not meeting.ended and not outcome.ended:
                    outcome.ended = True
                    if current:
                        outcome.count = 0
                    ended = MeetingEnded(room_id=room.room_id, meeting_id=meeting.meeting_id)
                    outcome.events.append(announce(ended))
                continue
            if event.event_type not in PRESENCE:
                if event.event_type not in IGNORED:
                    log.info("meeting_event.ignored", event_type=event.event_type)
                continue
            assert event.attendee_id is not None
            record = records.get(event.attendee_id)
            if record is None:
                log.info("meeting_event.unknown_attendee", attendee_id=event.attendee_id)
                continue
            change = advance(record, event)
            if change is None:
                continue  # a duplicate, or older than what is applied
            records[event.attendee_id] = change.after
            first = outcome.changes.get(event.attendee_id)
            outcome.changes[event.attendee_id] = (
                change
                if first is None
                else PresenceChange(first.before, change.after, change.presence)
            )
            if current and not outcome.ended and change.before.connected != change.after.connected:
                outcome.count = max(0, outcome.count + (1 if change.after.connected else -1))
            outcome.events.append(
                announce(
                    AttendeePresenceChanged(
                        room_id=room.room_id,
                        meeting_id=meeting.meeting_id,
                        attendee_id=record.attendee_id,
                        user_id=record.user_id,
                        presence=change.presence,
                        attendee_count=outcome.count if current else room.attendee_count,
                    )
                )
            )
        return outcome
