"""The meeting-events queue over SQS (aiobotocore), and, for local runs, the
EventBridge rule and queues that deliver Chime's meeting events to it.

On AWS the rule, the queue, its dead-letter queue and their policies are
infrastructure (`deploy/aws/meeting-events.yaml`); `provision` creates the
same in moto server, where the Chime emulator publishes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.logging import get_logger

from ..chime_events import DETAIL_TYPE, SOURCE
from ..ports import Delivery

if TYPE_CHECKING:
    from types_aiobotocore_events import EventBridgeClient
    from types_aiobotocore_sqs import SQSClient

log = get_logger("belfry.rooms")

BATCH = 10  # SQS: at most 10 messages per receive and per delete batch


class SqsMeetingEvents:
    """`MeetingEventQueue` over one SQS queue."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        wait_seconds: int = 10,
        visibility_seconds: int = 30,
    ) -> None:
        self._client = client
        self.queue_url = queue_url
        self._wait = wait_seconds
        self._visibility = visibility_seconds

    async def receive(self) -> list[Delivery]:
        response = await self._client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=self._wait,
            VisibilityTimeout=self._visibility,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Delivery(
                message_id=m["MessageId"],
                body=m.get("Body", ""),
                receipt=m["ReceiptHandle"],
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in response.get("Messages", [])
        ]

    async def delete(self, deliveries: Sequence[Delivery]) -> None:
        for start in range(0, len(deliveries), BATCH):
            chunk = deliveries[start : start + BATCH]
            response = await self._client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": d.receipt} for i, d in enumerate(chunk)],
            )
            for failed in response.get("Failed", []):
                # Its change is committed; when it comes back it changes nothing.
                log.warning("meeting_event.delete_failed", code=failed.get("Code"))

    async def retry_soon(self, delivery: Delivery) -> None:
        await self._client.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=delivery.receipt, VisibilityTimeout=0
        )


@dataclass(frozen=True)
class Route:
    queue_url: str
    dead_letter_url: str
    rule_arn: str


async def provision(
    sqs: SQSClient,
    events: EventBridgeClient,
    *,
    queue_name: str,
    bus_name: str = "default",
    max_receive_count: int = 3,
) -> Route:
    """Idempotently: the queue with its dead-letter queue (redrive policy), a
    rule on `bus_name` for Chime's meeting events targeting it, and the queue
    policy that lets EventBridge send to it (what deploy/aws/ declares)."""
    dead_letter_url = (await sqs.create_queue(QueueName=f"{queue_name}-dlq"))["QueueUrl"]
    dead_letter_arn = await _arn(sqs, dead_letter_url)
    redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": str(max_receive_count)}
    queue_url = (
        await sqs.create_queue(
            QueueName=queue_name, Attributes={"RedrivePolicy": json.dumps(redrive)}
        )
    )["QueueUrl"]
    queue_arn = await _arn(sqs, queue_url)
    if bus_name != "default":
        with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
            await events.create_event_bus(Name=bus_name)
    pattern = {"source": [SOURCE], "detail-type": [DETAIL_TYPE]}
    rule_arn = (
        await events.put_rule(
            Name=queue_name, EventBusName=bus_name, EventPattern=json.dumps(pattern)
        )
    )["RuleArn"]
    await events.put_targets(
        Rule=queue_name, EventBusName=bus_name, Targets=[{"Id": "rooms", "Arn": queue_arn}]
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    await sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    log.info("meeting_events.provisioned", queue=queue_name, bus=bus_name)
    return Route(queue_url, dead_letter_url, rule_arn)


async def queue_url(sqs: SQSClient, queue: str) -> str:
    """A queue URL as configured, or the URL of a queue given by name."""
    if queue.startswith(("https://", "http://")):
        return queue
    return (await sqs.get_queue_url(QueueName=queue))["QueueUrl"]


async def _arn(sqs: SQSClient, url: str) -> str:
    attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]
