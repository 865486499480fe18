"""The live landing page end to end: scheduler, rooms and notifier in one app
over real RabbitMQ; the Chime emulator publishes its meeting events to an
EventBridge bus in moto server, rooms polls them from SQS, and a signed-in
WebSocket client sees `room.updated` when the room activates, when people
connect and drop, and when it ends."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from typing import Any

import httpx
import pytest

from emulators.chime.control import EmulatorControl
from services.notifier.bootstrap import definition as notifier_definition
from services.notifier.settings import NotifierSettings
from services.rooms.bootstrap import build as build_rooms
from services.rooms.bootstrap import definition as rooms_definition
from services.rooms.settings import RoomsSettings
from services.scheduler.bootstrap import build as build_scheduler
from services.scheduler.bootstrap import definition as scheduler_definition
from services.scheduler.settings import SchedulerSettings
from shared.auth import mint_local_token
from shared.bus import instance_id
from shared.service import create_platform_app
from tests.notifier.conftest import ws_client
from tests.scheduler.conftest import MovableClock
from tests.support import drop_topology, isolated, serving

pytestmark = pytest.mark.amqp


async def test_a_signed_in_client_watches_a_room_fill_and_end(
    amqp_url: str, moto_url: str, chime_url: str, chime: EmulatorControl
) -> None:
    bus_name = f"belfry-story-{uuid.uuid4().hex[:8]}"
    common: dict[str, Any] = {
        **isolated(),
        "amqp_url": amqp_url,
        "aws_endpoint_url": moto_url,
        "chime_endpoint_url": chime_url,
        "retry_delays_seconds": (0.05, 0.2),
        "log_level": "WARNING",
    }
    clock = MovableClock()
    scheduler = SchedulerSettings(**common, scheduler_tick_seconds=0.1)
    rooms = RoomsSettings(
        **common,
        rooms_meeting_events_provision=True,
        rooms_meeting_events_bus=bus_name,
        rooms_meeting_events_wait_seconds=1,
    )
    notifier = NotifierSettings(**common)
    await chime.set_config(events_endpoint=moto_url, event_bus_name=bus_name)
    app = create_platform_app(
        [
            dataclasses.replace(
                scheduler_definition, build=functools.partial(build_scheduler, clock=clock)
            ),
            dataclasses.replace(
                rooms_definition, build=functools.partial(build_rooms, clock=clock)
            ),
            notifier_definition,
        ],
        settings={"scheduler": scheduler, "rooms": rooms, "notifier": notifier},
    )

    def bearer(user: str, *groups: str) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(scheduler, user, list(groups))}"}

    try:
        async with (
            serving(app) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
            ws_client(base, notifier, "cleo", ["customer"]) as watcher,
        ):
            start_at = int(clock()) + 1
            created = await http.post(
                "/schedule",
                headers=bearer("ada", "admin"),
                json={
                    "title": "Live",
                    "topic": "presence",
                    "start_at": start_at,
                    "duration_minutes": 1,
                    "media_region": "us-east-1",
                },
            )
            assert created.status_code == 201, created.text
            room_id = created.json()["room_id"]
            shown = functools.partial(watcher.rooms, room_id)

            await watcher.wait_for(lambda _: any(f["status"] == "active" for f in shown()))
            assert shown()[0] == {
                "room_id": room_id,
                "title": "Live",
                "status": "active",
                "attendee_count": 0,
            }

            joins = [
                (await http.post(f"/rooms/{room_id}/join", headers=bearer(u, "customer"))).json()
                for u in ("ann", "bob")
            ]
            for joined in joins:
                await chime.connect(
                    joined["Meeting"]["MeetingId"], joined["Attendee"]["AttendeeId"]
                )
            await watcher.wait_for(lambda _: shown()[-1]["attendee_count"] == 2)
            await chime.drop(joins[0]["Meeting"]["MeetingId"], joins[0]["Attendee"]["AttendeeId"])
            await watcher.wait_for(lambda _: shown()[-1]["attendee_count"] == 1)

            clock.advance(start_at + 60 - clock() + 0.05)  # the room's end
            await watcher.wait_for(lambda _: shown()[-1]["status"] == "ended")
            assert shown()[-1]["attendee_count"] == 0
            counts = [f["attendee_count"] for f in shown()]
            assert counts[: counts.index(2) + 1] == sorted(counts[: counts.index(2) + 1])
            assert "cursor" not in watcher.of("room.updated")[0]
    finally:
        await drop_topology(scheduler, f"notifier.fanout.{instance_id(notifier)}")
