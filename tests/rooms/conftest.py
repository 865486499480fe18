"""A running rooms service over real RabbitMQ, moto server and the Chime
emulator, plus a bus that publishes the scheduler's events and records what
rooms announces."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from emulators.chime.control import EmulatorControl
from services.rooms.attendance import Attendance
from services.rooms.bootstrap import definition
from services.rooms.domain import Room
from services.rooms.settings import RoomsSettings
from shared.auth import mint_local_token
from shared.aws import AwsClients
from shared.bus import EventBus, Subscription, create_bus
from shared.events import Envelope, EventData, RoomActivated
from shared.inbox import INBOX_TABLE, Inbox
from shared.service import create_platform_app, provided_by
from tests.support import isolated, lifespan_client, wait_until

ANNOUNCED = (
    "room.meeting_started",
    "room.attendee_joined",
    "room.attendee_left",
    "room.attendee_presence_changed",
    "room.meeting_ended",
    "room.updated",
)


@dataclass
class Rooms:
    """The rooms service under test and what surrounds it."""

    client: httpx.AsyncClient
    attendance: Attendance
    scheduler: EventBus
    chime: EmulatorControl
    settings: RoomsSettings
    inbox: Inbox
    announced: list[Envelope] = field(default_factory=list)
    fuzz_room: str | None = None  # an active room the property tests share

    def auth(self, user: str, groups: tuple[str, ...] = ("customer",)) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(self.settings, user, groups)}"}

    async def publish(self, data: EventData, **envelope: Any) -> Envelope:
        event = Envelope.new(data, producer="scheduler", **envelope)
        await self.scheduler.publish(event)
        return event

    async def room(self, room_id: str) -> Room | None:
        return await self.attendance.store.room(room_id)

    async def activate(
        self,
        room_id: str | None = None,
        *,
        starts_in: int = -5,
        lasts: int = 3600,
        title: str = "Maths",
        media_region: str = "us-east-1",
    ) -> str:
        """Publish RoomActivated as the scheduler would and wait until rooms has it."""
        room_id = room_id or f"room-{uuid.uuid4().hex[:12]}"
        now = int(time.time())
        await self.publish(
            RoomActivated(
                room_id=room_id,
                title=title,
                topic="algebra",
                start_at=now + starts_in,
                end_at=now + starts_in + lasts,
                media_region=media_region,
            )
        )
        await self.handled(room_id, lambda r: r.status == "active")
        return room_id

    async def handled(self, room_id: str, condition: Callable[[Room], bool]) -> Room:
        found: list[Room] = []

        async def check() -> bool:
            room = await self.room(room_id)
            if room is not None and condition(room):
                found.append(room)
                return True
            return False

        await wait_until(check, timeout=15, message=f"room {room_id}")
        return found[0]

    async def join(self, room_id: str, user: str) -> httpx.Response:
        return await self.client.post(f"/rooms/{room_id}/join", headers=self.auth(user))

    def of_type(self, event_type: str, room_id: str | None = None) -> list[Envelope]:
        return [
            e
            for e in self.announced
            if e.type == event_type and (room_id is None or e.data.room_id == room_id)  # type: ignore[attr-defined]
        ]

    async def live_meetings(self, room_id: str) -> list[dict[str, Any]]:
        return [
            dict(m) for m in await self.chime.live_meetings() if m["ExternalMeetingId"] == room_id
        ]


def isolated_settings(
    amqp_url: str, moto_url: str, chime_url: str, **overrides: Any
) -> RoomsSettings:
    """Settings whose queues, exchanges and tables belong to this caller alone."""
    values: dict[str, Any] = {
        **isolated(),
        "amqp_url": amqp_url,
        "aws_endpoint_url": moto_url,
        "chime_endpoint_url": chime_url,
        "retry_delays_seconds": (0.05, 0.2),
        "log_level": "WARNING",
    }
    values.update(overrides)
    return RoomsSettings(**values)


@contextlib.asynccontextmanager
async def running_rooms(
    settings: RoomsSettings, chime: EmulatorControl, aws: AwsClients
) -> AsyncIterator[Rooms]:
    """The rooms app in process (lifespan running), a scheduler-side bus and a
    reader of rooms' inbox."""
    app = create_platform_app([definition], settings={"rooms": settings})
    async with lifespan_client(app) as client:
        attendance = provided_by(app, Attendance)
        scheduler = create_bus(settings, "scheduler")
        inbox = Inbox(aws.dynamodb, INBOX_TABLE.name(settings.table_prefix, "rooms"))
        rooms = Rooms(client, attendance, scheduler, chime, settings, inbox)

        async def record(envelope: Envelope) -> None:
            rooms.announced.append(envelope)

        scheduler.subscribe(Subscription("spy.rooms", ANNOUNCED, record))
        await scheduler.start()
        try:
            yield rooms
        finally:
            await scheduler.stop(drain_timeout=2)


@pytest.fixture(scope="module")
async def rooms_service(
    amqp_url: str, moto_url: str, chime_url: str, aws: AwsClients
) -> AsyncIterator[Rooms]:
    """One rooms service per test module (queues are a shared, scarce resource);
    tests use their own room ids."""
    async with EmulatorControl(chime_url) as control:
        settings = isolated_settings(amqp_url, moto_url, chime_url)
        async with running_rooms(settings, control, aws) as running:
            yield running


@pytest.fixture
async def rooms(rooms_service: Rooms, chime: EmulatorControl) -> Rooms:
    """The module's service, with the emulator reset for this test."""
    rooms_service.announced.clear()
    rooms_service.chime = chime
    return rooms_service


async def gather_limited(calls: list[Any], limit: int = 50) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Any) -> Any:
        async with semaphore:
            return await call

    return await asyncio.gather(*(run(c) for c in calls))
