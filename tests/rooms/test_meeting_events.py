"""Who is really in a room, end to end: the Chime emulator publishes its
meeting events to an EventBridge bus in moto server, a rule delivers them to
an SQS queue (with a dead-letter queue), rooms polls it; over real RabbitMQ."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulators.chime.control import EmulatorControl
from services.rooms.adapters.sqs import queue_url
from shared.aws import AwsClients
from shared.settings import BelfrySettings
from tests.rooms.conftest import Rooms, isolated_settings, running_rooms
from tests.support import wait_until

BUS = f"belfry-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def sqs_clients(moto_url: str) -> AsyncIterator[AwsClients]:
    async with AwsClients(BelfrySettings(aws_endpoint_url=moto_url), services=("sqs",)) as aws:
        yield aws


@pytest.fixture(scope="module")
async def presence_service(
    amqp_url: str, moto_url: str, chime_url: str, aws: AwsClients
) -> AsyncIterator[Rooms]:
    settings = isolated_settings(
        amqp_url,
        moto_url,
        chime_url,
        rooms_meeting_events_provision=True,
        rooms_meeting_events_bus=BUS,
        rooms_meeting_events_wait_seconds=1,
        rooms_meeting_events_visibility_seconds=2,
        rooms_meeting_events_max_receives=2,
    )
    async with EmulatorControl(chime_url) as control, running_rooms(settings, control, aws) as r:
        yield r


@pytest.fixture
async def rooms(presence_service: Rooms, chime: EmulatorControl, moto_url: str) -> Rooms:
    """The module's service; the emulator reset and publishing to the test's bus."""
    presence_service.announced.clear()
    presence_service.chime = chime
    await chime.set_config(events_endpoint=moto_url, event_bus_name=BUS)
    return presence_service


async def count_is(rooms: Rooms, room_id: str, expected: int, timeout: float = 5.0) -> None:
    async def counted() -> bool:
        room = await rooms.client.get(f"/rooms/{room_id}", headers=rooms.auth("viewer"))
        return bool(room.json()["attendee_count"] == expected)

    await wait_until(counted, timeout=timeout, message=f"attendee_count {expected}")


async def joined(rooms: Rooms, room_id: str, users: list[str]) -> tuple[str, dict[str, str]]:
    answers = [(await rooms.join(room_id, u)).json() for u in users]
    meeting = answers[0]["Meeting"]["MeetingId"]
    return meeting, {u: a["Attendee"]["AttendeeId"] for u, a in zip(users, answers, strict=True)}


async def test_connected_attendees_are_counted_and_an_idle_meeting_is_forgotten(
    rooms: Rooms,
) -> None:
    room_id = await rooms.activate()
    users = [f"u{n}" for n in range(5)]
    meeting, ids = await joined(rooms, room_id, users)
    for user in users[:3]:
        await rooms.chime.connect(meeting, ids[user])
    await count_is(rooms, room_id, 3)
    listing = await rooms.client.get(f"/rooms/{room_id}/attendees", headers=rooms.auth("x"))
    connected = {a["user_id"] for a in listing.json()["attendees"] if a["connected"]}
    assert connected == set(users[:3])

    await rooms.chime.drop(meeting, ids["u1"])
    await count_is(rooms, room_id, 2)

    # Chime ends the meeting once nobody has been connected for its idle time.
    await rooms.chime.set_config(meeting_idle_seconds=30)
    for user in ("u0", "u2"):
        await rooms.chime.disconnect(meeting, ids[user])
    await rooms.chime.advance_clock(31)
    await rooms.handled(room_id, lambda r: r.meeting is None)
    await count_is(rooms, room_id, 0)
    await wait_until(lambda: len(rooms.of_type("MeetingEnded", room_id)) == 1)

    await rooms.chime.reset_counters()
    again = (await rooms.join(room_id, "u4")).json()
    assert again["Meeting"]["MeetingId"] != meeting
    counters = await rooms.chime.counters()
    assert counters["calls"].get("CreateMeeting") == 1
    assert counters["failed"] == {}  # no NotFound first


async def test_duplicated_and_reordered_messages_change_nothing_twice(
    rooms: Rooms, sqs_clients: AwsClients
) -> None:
    room_id = await rooms.activate()
    meeting, ids = await joined(rooms, room_id, ["ann", "bob"])
    await rooms.chime.connect(meeting, ids["ann"])
    await rooms.chime.connect(meeting, ids["bob"])
    await rooms.chime.disconnect(meeting, ids["ann"])

    # all three applied (a count of 1 is also passed on the way); the bus is
    # at-least-once, so the spy may see an event twice: count distinct ones
    def applied() -> int:
        return len({e.event_id for e in rooms.of_type("AttendeePresenceChanged", room_id)})

    await wait_until(lambda: applied() == 3, timeout=30, describe=lambda: f"{applied()} applied")
    await count_is(rooms, room_id, 1)
    room = await rooms.room(room_id)
    assert room is not None
    version = room.presence_version

    # Everything Chime said about this meeting again, newest first, twice.
    recent = (await rooms.chime.events())["recent"]
    mine = [e for e in recent if e["detail"]["meetingId"] == meeting]
    assert len(mine) >= 4
    url = await queue_url(sqs_clients.sqs, f"{rooms.settings.table_prefix}-rooms-meeting-events")
    for envelope in [*reversed(mine), *reversed(mine)]:
        await sqs_clients.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(envelope))

    async def drained() -> bool:
        attributes = await sqs_clients.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        values = attributes["Attributes"]
        return (
            values["ApproximateNumberOfMessages"]
            == values["ApproximateNumberOfMessagesNotVisible"]
            == "0"
        )

    await wait_until(drained, timeout=15, message="the replayed messages handled")
    room = await rooms.room(room_id)
    assert room is not None
    assert (room.attendee_count, room.presence_version) == (1, version)


async def test_poison_goes_to_the_dead_letter_queue_and_the_poller_goes_on(
    rooms: Rooms, sqs_clients: AwsClients
) -> None:
    sqs = sqs_clients.sqs
    name = f"{rooms.settings.table_prefix}-rooms-meeting-events"
    url, dlq = await queue_url(sqs, name), await queue_url(sqs, f"{name}-dlq")
    unknown: dict[str, Any] = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "source": "aws.chime",
        "detail-type": "Chime Meeting State Change",
        "detail": {"eventType": "chime:AttendeeJoined", "timestamp": 1, "meetingId": "m"},
    }
    unknown["detail"]["attendeeId"] = "a"  # of a meeting rooms never made: ignored
    strange = {**unknown, "id": str(uuid.uuid4())}
    strange["detail"] = {**unknown["detail"], "eventType": "chime:SomethingNew"}
    for body in ("{not json", json.dumps(unknown), json.dumps(strange)):
        await sqs.send_message(QueueUrl=url, MessageBody=body)

    async def dead_lettered() -> bool:
        got = await sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, MaxNumberOfMessages=10)
        return any(m["Body"] == "{not json" for m in got.get("Messages", []))

    await wait_until(dead_lettered, timeout=20, message="the poison message in the DLQ")

    room_id = await rooms.activate()
    meeting, ids = await joined(rooms, room_id, ["cy"])
    await rooms.chime.connect(meeting, ids["cy"])
    await count_is(rooms, room_id, 1)
    assert (await rooms.client.get("/readyz")).status_code == 200


async def test_readiness_is_red_while_the_queue_cannot_be_polled(
    amqp_url: str, moto_url: str, chime_url: str, aws: AwsClients, chime: EmulatorControl
) -> None:
    settings = isolated_settings(
        amqp_url,
        moto_url,
        chime_url,
        rooms_meeting_events_queue=f"{moto_url}/123456789012/no-such-queue",
        rooms_meeting_events_wait_seconds=1,
    )
    async with running_rooms(settings, chime, aws) as rooms:

        async def red() -> bool:
            response = await rooms.client.get("/readyz")
            return response.status_code == 503 and "meeting_events" in response.text

        await wait_until(red, timeout=15, message="/readyz red")
