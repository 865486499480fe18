"""The event queue and the background tasks, in-process with a fake EventBridge."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from emulators.chime.clock import ManualClock
from emulators.chime.config import EmulatorConfig
from emulators.chime.emulator import ChimeRequest, Emulator
from emulators.chime.events import PendingEvent
from emulators.chime.lifecycle import BACKOFF_MAX_SECONDS, EventBridgeClients, backoff_seconds
from tests.emulator.world import handle_json
from tests.support import wait_until


class FakeEventBridge(EventBridgeClients):
    """Fails the first `outages` calls, then answers `codes` once per call, then accepts."""

    def __init__(self, outages: int = 0, codes: list[list[str | None]] | None = None) -> None:
        super().__init__()
        self.outages = outages
        self.codes = list(codes or [])
        self.calls: list[tuple[str, str, list[dict[str, Any]]]] = []
        self.accepted: list[dict[str, Any]] = []

    async def put(self, endpoint: str, bus: str, batch: list[PendingEvent]) -> list[str | None]:
        self.calls.append((endpoint, bus, [e.entry for e in batch]))
        if self.outages:
            self.outages -= 1
            raise ConnectionError("EventBridge is down")
        codes: list[str | None] = self.codes.pop(0) if self.codes else [None] * len(batch)
        self.accepted += [e.entry for e, code in zip(batch, codes, strict=True) if code is None]
        return codes


def _emulator(**config: Any) -> Emulator:
    settings = EmulatorConfig(events_endpoint="http://eventbridge.test", **config)
    return Emulator(clock=ManualClock(), config=settings)


def _create_meeting(emulator: Emulator, attendees: int = 0) -> str:
    body = {"ClientRequestToken": "tok1", "MediaRegion": "us-east-1", "ExternalMeetingId": "room"}
    status, created = handle_json(emulator, "POST", "/meetings", body)
    assert status == 200
    meeting_id = str(created["Meeting"]["MeetingId"])
    for n in range(attendees):
        path = f"/meetings/{meeting_id}/attendees"
        assert handle_json(emulator, "POST", path, {"ExternalUserId": f"user-{n}"})[0] == 200
    return meeting_id


def _stamps(entries: list[dict[str, Any]]) -> list[int]:
    return [json.loads(entry["Detail"])["timestamp"] for entry in entries]


def test_backoff_doubles_and_is_capped() -> None:
    delays = [backoff_seconds(n) for n in range(1, 10)]
    assert delays[:3] == [0.1, 0.2, 0.4]
    assert delays == sorted(delays)
    assert max(delays) == BACKOFF_MAX_SECONDS


def test_the_queue_is_bounded_and_drops_the_oldest(caplog: pytest.LogCaptureFixture) -> None:
    emulator = _emulator()
    emulator.events._queue_limit = 5  # as if 10,000 were waiting
    with caplog.at_level(logging.WARNING, logger="emulators.chime"):
        _create_meeting(emulator, attendees=7)  # 8 events
    stats = emulator.events.as_json()
    assert (stats["pending"], stats["dropped"]) == (5, 3)
    kept = [json.loads(e.entry["Detail"])["externalUserId"] for e in emulator.events.queue]
    assert kept == [f"user-{n}" for n in range(2, 7)]
    assert "chime.events_dropped" in caplog.text
    assert len(stats["recent"]) == 8, "recent keeps what the queue dropped"


def test_batches_hold_at_most_ten_events_of_one_region() -> None:
    emulator = _emulator()
    _create_meeting(emulator, attendees=11)  # 12 events in us-east-1
    west = {"ClientRequestToken": "tok2", "MediaRegion": "us-west-2", "ExternalMeetingId": "room"}
    headers_region = "Credential=AKID/20240101/us-west-2/chime/aws4_request"
    request = ChimeRequest(
        "POST", "/meetings", {}, {"authorization": headers_region}, json.dumps(west).encode()
    )
    assert emulator.handle(request).status == 200
    sizes = []
    while emulator.events.queue:
        batch = emulator.events.take_batch()
        sizes.append((len(batch), {e.region for e in batch}))
        emulator.events.settle([])
    assert sizes == [(10, {"us-east-1"}), (2, {"us-east-1"}), (1, {"us-west-2"})]
    assert emulator.events.published == 13


async def test_the_publisher_retries_in_order_until_eventbridge_answers() -> None:
    emulator = _emulator(event_bus_name="meetings")
    fake = FakeEventBridge(outages=2, codes=[[None, "ThrottlingException", None] + [None] * 7])
    emulator.background.clients = fake
    _create_meeting(emulator, attendees=22)  # 23 events; handle() kicks the publisher
    assert "chime-emulator-events" in emulator.background.active()
    await wait_until(
        lambda: emulator.events.as_json()["pending"] == 0,
        timeout=10,
        message="the queue to drain",
        describe=lambda: str({k: v for k, v in emulator.events.as_json().items() if k != "recent"}),
    )
    stats = emulator.events.as_json()
    assert (stats["published"], stats["dropped"], stats["failed_attempts"]) == (23, 0, 3)
    assert all(len(entries) <= 10 for _, _, entries in fake.calls)
    assert {(endpoint, bus) for endpoint, bus, _ in fake.calls} == {
        ("http://eventbridge.test", "meetings")
    }
    recent = [e["detail"]["timestamp"] for e in stats["recent"]]
    stamps = _stamps(fake.accepted)
    assert sorted(stamps) == recent, "every event once"
    # The throttled entry went back to the head: later ones of its batch went first.
    assert stamps == recent[:1] + recent[2:10] + recent[1:2] + recent[10:]
    entry = fake.accepted[0]
    assert entry["Source"] == "aws.chime"
    assert entry["DetailType"] == "Chime Meeting State Change"
    assert entry["Resources"][0].startswith("arn:aws:chime:us-east-1:123456789012:meeting/")
    assert entry["Time"].timestamp() * 1000 == stamps[0]
    await emulator.aclose()


async def test_rejected_entries_are_dropped_not_retried() -> None:
    emulator = _emulator()
    fake = FakeEventBridge(codes=[["MalformedDetail", None]])
    emulator.background.clients = fake
    _create_meeting(emulator, attendees=1)
    await wait_until(lambda: emulator.events.as_json()["pending"] == 0, timeout=10)
    stats = emulator.events.as_json()
    assert (stats["published"], stats["dropped"], stats["failed_attempts"]) == (1, 1, 0)
    await emulator.aclose()


async def test_publishing_off_queues_nothing() -> None:
    emulator = Emulator(clock=ManualClock())
    fake = FakeEventBridge()
    emulator.background.clients = fake
    _create_meeting(emulator, attendees=1)
    assert emulator.events.as_json()["pending"] == 0
    assert emulator.background.active() == ["chime-emulator-sweep"]
    await emulator.aclose()
    assert fake.calls == []


def _tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("chime-emulator-")]


async def test_reset_and_aclose_stop_the_background_tasks() -> None:
    emulator = _emulator()
    emulator.background.clients = FakeEventBridge(outages=1000)  # the publisher never ends
    _create_meeting(emulator, attendees=1)
    started = _tasks()
    assert sorted(t.get_name() for t in started) == [
        "chime-emulator-events",
        "chime-emulator-sweep",
    ]
    emulator.reset()
    assert emulator.background.active() == []
    await wait_until(lambda: all(t.done() for t in started), timeout=5, message="cancelled")

    _create_meeting(emulator)  # a request starts them again (the config still publishes)
    restarted = [t for t in _tasks() if not t.done()]
    assert sorted(t.get_name() for t in restarted) == [
        "chime-emulator-events",
        "chime-emulator-sweep",
    ]
    await emulator.aclose()
    assert all(t.done() for t in restarted)
    assert emulator.background.active() == []


async def test_the_sweep_stops_when_no_meeting_is_live() -> None:
    emulator = Emulator(clock=ManualClock())
    meeting_id = _create_meeting(emulator)
    [sweep] = [t for t in _tasks() if not t.done()]
    emulator.clock.advance(301)
    await wait_until(sweep.done, timeout=5, message="the sweep to end")
    assert meeting_id in emulator.meetings.ended
    assert emulator.events.recent[-1]["detail"]["eventType"] == "chime:MeetingEnded"
    assert emulator.background.active() == []
