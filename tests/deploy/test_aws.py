"""deploy/aws/meeting-events.yaml (CloudFormation) declares what rooms'
provisioning makes in moto for local runs, and grants what its SQS adapter calls."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from services.rooms.chime_events import DETAIL_TYPE, SOURCE

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "aws" / "meeting-events.yaml"


class _CloudFormation(yaml.SafeLoader):
    """Reads the short intrinsic-function tags (!Ref, !Sub, !GetAtt) as plain values."""


def _intrinsic(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    assert isinstance(node, yaml.SequenceNode)
    return loader.construct_sequence(node)


for _tag in ("!Ref", "!Sub", "!GetAtt"):
    _CloudFormation.add_constructor(_tag, _intrinsic)


def resources() -> dict[str, Any]:
    template = yaml.load(TEMPLATE.read_text(), Loader=_CloudFormation)  # noqa: S506 - SafeLoader subclass
    return dict(template["Resources"])


def test_the_rule_takes_chime_meeting_events_from_the_default_bus_to_the_queue() -> None:
    rule = resources()["Rule"]["Properties"]
    assert rule["EventBusName"] == "default"
    assert rule["EventPattern"] == {"source": [SOURCE], "detail-type": [DETAIL_TYPE]}
    assert rule["Targets"][0]["Arn"] == "Queue.Arn"


def test_the_queue_dead_letters_and_only_the_rule_may_send() -> None:
    found = resources()
    redrive = found["Queue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == "DeadLetterQueue.Arn"
    statement = found["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == "Rule.Arn"


def test_the_rooms_policy_grants_every_sqs_call_the_adapter_makes() -> None:
    source = (REPO / "services" / "rooms" / "adapters" / "sqs.py").read_text()
    poller = source.split("class Route")[0]  # provisioning is for local runs only
    called = {
        "sqs:" + "".join(word.capitalize() for word in name.split("_"))
        for name in re.findall(r"self\._client\.(\w+)\(", poller)
    }
    called.discard("sqs:DeleteMessageBatch")
    called.add("sqs:DeleteMessage")  # DeleteMessageBatch is authorised as DeleteMessage
    statement = resources()["RoomsPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert called <= set(statement["Action"]), called - set(statement["Action"])
