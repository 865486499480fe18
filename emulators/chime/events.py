"""Chime's meeting lifecycle events, in the form EventBridge delivers them.

Chime SDK meetings publish "Chime Meeting State Change" events from the
source `aws.chime` to the account's EventBridge bus. The emulator records
every event it emits (the last 200 stay visible through the control API) and,
when `events_endpoint` is set, queues it for the publisher in `lifecycle.py`,
which sends the queue in order with PutEvents.

One meeting's events carry strictly increasing `timestamp`s (epoch
milliseconds of the emulator's clock, bumped by 1 ms when the clock has not
moved), so consumers can order them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulators.chime.config import EmulatorConfig

if TYPE_CHECKING:
    from emulators.chime.meetings import Attendee, Meeting

log = logging.getLogger("emulators.chime")

SOURCE = "aws.chime"
DETAIL_TYPE = "Chime Meeting State Change"

MEETING_STARTED = "chime:MeetingStarted"
MEETING_ENDED = "chime:MeetingEnded"
ATTENDEE_ADDED = "chime:AttendeeAdded"
ATTENDEE_DELETED = "chime:AttendeeDeleted"
ATTENDEE_JOINED = "chime:AttendeeJoined"
ATTENDEE_LEFT = "chime:AttendeeLeft"
ATTENDEE_DROPPED = "chime:AttendeeDropped"

QUEUE_LIMIT = 10_000
RECENT_LIMIT = 200
BATCH_LIMIT = 10  # PutEvents takes at most 10 entries


@dataclass(frozen=True)
class PendingEvent:
    """One PutEvents entry waiting to be sent (its EventBusName is added when it is
    sent, from the config of that moment), and the region it is sent to."""

    region: str
    entry: dict[str, Any]


def _iso_seconds(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class MeetingEvents:
    """The events emitted so far: a bounded, in-order queue and the recent few."""

    def __init__(self, config: EmulatorConfig, *, queue_limit: int = QUEUE_LIMIT) -> None:
        self._config = config
        self._queue_limit = queue_limit
        self.queue: deque[PendingEvent] = deque()
        self.in_flight: list[PendingEvent] = []
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_LIMIT)
        self.published = 0
        self.dropped = 0
        self.failed_attempts = 0

    def emit(
        self,
        event_type: str,
        meeting: Meeting,
        at: float,
        attendee: Attendee | None = None,
        **extra: str,
    ) -> dict[str, Any]:
        """Record one event of `meeting` that happened at `at` (epoch seconds)."""
        timestamp = max(round(at * 1000), meeting.last_event_ms + 1)
        meeting.last_event_ms = timestamp
        detail: dict[str, Any] = {
            "version": "0",
            "eventType": event_type,
            "timestamp": timestamp,
            "meetingId": meeting.meeting_id,
            "externalMeetingId": meeting.request["ExternalMeetingId"],
            "mediaRegion": meeting.request["MediaRegion"],
        }
        if attendee is not None:
            detail["attendeeId"] = attendee.attendee_id
            detail["externalUserId"] = attendee.external_user_id
        detail.update(extra)
        moment = dt.datetime.fromtimestamp(timestamp / 1000, tz=dt.UTC)
        envelope = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": DETAIL_TYPE,
            "source": SOURCE,
            "account": self._config.account_id,
            "time": _iso_seconds(moment),
            "region": meeting.region,
            "resources": [meeting.arn],
            "detail": detail,
        }
        self.recent.append(envelope)
        log.debug("chime.event type=%s meeting=%s", event_type, meeting.meeting_id)
        if self._config.events_endpoint is not None:
            entry = {
                "Source": SOURCE,
                "DetailType": DETAIL_TYPE,
                "Resources": [meeting.arn],
                "Time": moment,
                "Detail": json.dumps(detail),
            }
            self.queue.append(PendingEvent(meeting.region, entry))
            self._trim()
        return envelope

    def _trim(self) -> None:
        """Drop the oldest queued events beyond the bound."""
        excess = len(self.queue) + len(self.in_flight) - self._queue_limit
        if excess <= 0:
            return
        excess = min(excess, len(self.queue))
        for _ in range(excess):
            self.queue.popleft()
        before = self.dropped
        self.dropped += excess
        if before == 0 or before // 1000 != self.dropped // 1000:
            log.warning(
                "chime.events_dropped dropped=%d limit=%d (EventBridge is not keeping up)",
                self.dropped,
                self._queue_limit,
            )

    def take_batch(self) -> list[PendingEvent]:
        """The next PutEvents batch: up to 10 queued events for one region, in order."""
        batch: list[PendingEvent] = []
        while self.queue and len(batch) < BATCH_LIMIT:
            if batch and self.queue[0].region != batch[0].region:
                break
            batch.append(self.queue.popleft())
        self.in_flight = batch
        return batch

    def settle(self, retry: list[PendingEvent], rejected: list[PendingEvent] | None = None) -> None:
        """The in-flight batch is done: `retry` goes back to the head of the queue
        (in order), `rejected` is dropped, the rest were published."""
        rejected = rejected or []
        self.published += len(self.in_flight) - len(retry) - len(rejected)
        self.in_flight = []
        self.queue.extendleft(reversed(retry))
        if rejected:
            self.dropped += len(rejected)
            log.warning("chime.events_rejected count=%d (EventBridge refused them)", len(rejected))
        self._trim()

    def as_json(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "pending": len(self.queue) + len(self.in_flight),
            "dropped": self.dropped,
            "failed_attempts": self.failed_attempts,
            "recent": list(self.recent),
        }
