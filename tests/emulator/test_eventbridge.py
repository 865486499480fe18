"""Lifecycle events through a real EventBridge stand-in (moto): rule -> SQS queue.

The emulator runs as its own process (`chime`), moto as another (`moto_url`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import get_session

from emulators.chime.control import EmulatorControl
from tests.emulator.world import ACCESS_KEY, REGION, SECRET_KEY
from tests.support import free_port, wait_until

PATTERN = {"source": ["aws.chime"], "detail-type": ["Chime Meeting State Change"]}


class Inbox:
    """An EventBridge bus whose rule sends Chime meeting events to an SQS queue."""

    def __init__(self, events: Any, sqs: Any, bus: str) -> None:
        self.events, self.sqs, self.bus = events, sqs, bus
        self.queue_url = ""
        self.received: list[dict[str, Any]] = []

    async def create(self) -> None:
        await self.events.create_event_bus(Name=self.bus)
        self.queue_url = (await self.sqs.create_queue(QueueName=self.bus))["QueueUrl"]
        attributes = await self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )
        await self.events.put_rule(
            Name="chime-meetings", EventBusName=self.bus, EventPattern=json.dumps(PATTERN)
        )
        await self.events.put_targets(
            Rule="chime-meetings",
            EventBusName=self.bus,
            Targets=[{"Id": "queue", "Arn": attributes["Attributes"]["QueueArn"]}],
        )

    async def delete(self) -> None:
        await self.events.remove_targets(
            Rule="chime-meetings", EventBusName=self.bus, Ids=["queue"]
        )
        await self.events.delete_rule(Name="chime-meetings", EventBusName=self.bus)
        await self.events.delete_event_bus(Name=self.bus)
        await self.sqs.delete_queue(QueueUrl=self.queue_url)

    async def receive(self) -> list[dict[str, Any]]:
        """Everything received so far (envelopes), after one short poll for more."""
        answer = await self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        for message in answer.get("Messages", []):
            self.received.append(json.loads(message["Body"]))
            await self.sqs.delete_message(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return self.received

    def types_of(self, meeting_id: str) -> list[str]:
        mine = [e for e in self.received if e["detail"]["meetingId"] == meeting_id]
        mine.sort(key=lambda e: e["detail"]["timestamp"])
        return [e["detail"]["eventType"] for e in mine]


@pytest.fixture
async def inbox(moto_url: str) -> AsyncIterator[Inbox]:
    settings: dict[str, Any] = {
        "endpoint_url": moto_url,
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
    }
    session = get_session()
    async with (
        session.create_client("events", **settings) as events,
        session.create_client("sqs", **settings) as sqs,
    ):
        box = Inbox(events, sqs, f"chime-{uuid.uuid4().hex[:10]}")
        await box.create()
        yield box
        await box.delete()


@pytest.fixture
async def chime_meetings(chime_url: str) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "chime-sdk-meetings",
        endpoint_url=chime_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


async def _meeting_with_attendee(meetings: Any) -> tuple[str, str]:
    created = await meetings.create_meeting(
        ClientRequestToken=uuid.uuid4().hex, MediaRegion="us-east-1", ExternalMeetingId="room-1"
    )
    meeting_id = created["Meeting"]["MeetingId"]
    attendee = await meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="user-1")
    return meeting_id, attendee["Attendee"]["AttendeeId"]


async def test_events_reach_an_sqs_queue_through_an_eventbridge_rule(
    chime: EmulatorControl, inbox: Inbox, chime_meetings: Any, moto_url: str
) -> None:
    await chime.set_config(events_endpoint=moto_url, event_bus_name=inbox.bus)
    meeting_id, attendee_id = await _meeting_with_attendee(chime_meetings)
    await chime.connect(meeting_id, attendee_id)
    await chime.drop(meeting_id, attendee_id)
    await chime.set_config(meeting_idle_seconds=0.5)  # idle since the drop

    expected = [
        "chime:MeetingStarted",
        "chime:AttendeeAdded",
        "chime:AttendeeJoined",
        "chime:AttendeeDropped",
        "chime:MeetingEnded",
    ]

    async def all_arrived() -> bool:
        await inbox.receive()
        return len(inbox.types_of(meeting_id)) >= len(expected)

    await wait_until(
        all_arrived,
        timeout=20,
        message="the meeting's events in SQS",
        describe=lambda: str(inbox.types_of(meeting_id)),
    )
    assert inbox.types_of(meeting_id) == expected
    envelope = inbox.received[0]
    assert envelope["source"] == "aws.chime"
    assert envelope["detail-type"] == "Chime Meeting State Change"
    assert envelope["region"] == REGION
    assert envelope["resources"] == [f"arn:aws:chime:us-east-1:123456789012:meeting/{meeting_id}"]
    joined = next(e for e in inbox.received if e["detail"]["eventType"] == "chime:AttendeeJoined")
    assert joined["detail"]["attendeeId"] == attendee_id
    assert joined["detail"]["externalUserId"] == "user-1"
    assert joined["detail"]["networkType"] == "Normal"
    stats = await chime.events()
    assert (stats["published"], stats["pending"], stats["dropped"]) == (5, 0, 0)


async def test_chime_calls_succeed_while_eventbridge_is_down_and_events_follow_later(
    chime: EmulatorControl, inbox: Inbox, chime_meetings: Any, moto_url: str
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    await chime.set_config(events_endpoint=down, event_bus_name=inbox.bus)
    meeting_id, attendee_id = await _meeting_with_attendee(chime_meetings)
    await chime.connect(meeting_id, attendee_id)
    assert (await chime_meetings.get_meeting(MeetingId=meeting_id))["Meeting"]["MeetingId"]

    async def failing() -> bool:
        stats = await chime.events()
        return stats["failed_attempts"] >= 2 and stats["pending"] == 3

    await wait_until(failing, timeout=15, message="failed PutEvents attempts")
    assert (await chime.events())["published"] == 0

    await chime.set_config(events_endpoint=moto_url)

    async def delivered() -> bool:
        await inbox.receive()
        return len(inbox.types_of(meeting_id)) >= 3

    await wait_until(delivered, timeout=20, message="the queued events in SQS")
    assert inbox.types_of(meeting_id) == [
        "chime:MeetingStarted",
        "chime:AttendeeAdded",
        "chime:AttendeeJoined",
    ]
    stats = await chime.events()
    assert (stats["published"], stats["pending"]) == (3, 0)
