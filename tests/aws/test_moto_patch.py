"""emulators/aws patches moto's internals (moto is pinned in pyproject.toml for that).

A moto release that moves or renames what the patch replaces would not break
anything loudly: the assignment would add an attribute nobody calls, and the local
stand-in would be correct but slow again (quadratic transactions, re-lexing). So
these tests drive the launcher the way `make run` does (`running_aws`, moto's
server in this process) and check, with spies on the functions the patch wraps,
that moto's calls really go through the patched code.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto.dynamodb.models
import pytest
from botocore.exceptions import ClientError
from moto.core.utils import unix_time
from moto.dynamodb.models.table import Table

from emulators.aws import server
from emulators.aws.server import running_aws

REGION = "us-east-1"


@pytest.fixture(scope="module")
def aws_url() -> Iterator[str]:
    with running_aws() as url:
        yield url


@pytest.fixture
def dynamodb(aws_url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=aws_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def table(dynamodb: Any) -> str:
    name = f"patch-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def counting(calls: list[Any], wrapped: Callable[..., Any]) -> Callable[..., Any]:
    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return wrapped(*args, **kwargs)

    return spy


def put(table: str, key: str, condition: str, **values: str) -> dict[str, Any]:
    item = {"pk": {"S": key}} | {name: {"S": value} for name, value in values.items()}
    return {"Put": {"TableName": table, "Item": item, "ConditionExpression": condition}}


def test_a_condition_expression_is_lexed_once_for_every_transaction(
    dynamodb: Any, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lexed: list[Any] = []
    monkeypatch.setattr(server, "_moto_lex", counting(lexed, server._moto_lex))
    # A text no other test used: the cache lives as long as the process.
    condition = f"attribute_not_exists(pk) OR attribute_not_exists(u{uuid.uuid4().hex})"

    for batch in ("a", "b"):
        dynamodb.transact_write_items(
            TransactItems=[put(table, f"{batch}{n}", condition) for n in range(3)]
        )

    # Six items, two transactions, one expression text: moto's lexer ran once.
    assert len(lexed) == 1, f"moto lexed the condition {len(lexed)} times"
    assert condition in server._LEXED
    scanned = dynamodb.scan(TableName=table)["Items"]
    assert sorted(i["pk"]["S"] for i in scanned) == ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_a_cancelled_transaction_backs_up_only_its_items_and_rolls_back(
    dynamodb: Any, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions: list[Any] = []
    monkeypatch.setattr(
        server,
        "_moto_transact_write_items",
        counting(transactions, server._moto_transact_write_items),
    )
    copied: list[Any] = []
    monkeypatch.setattr(
        server._COPY_WITHOUT_TABLE_BACKUPS,
        "deepcopy",
        counting(copied, server._COPY_WITHOUT_TABLE_BACKUPS.deepcopy),
    )
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "kept"}, "state": {"S": "before"}})

    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                put(table, "new", "attribute_not_exists(pk)"),
                put(table, "kept", "attribute_not_exists(pk)", state="after"),
            ]
        )

    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    # moto's own transaction ran inside the patched one ...
    assert len(transactions) == 1, "TransactWriteItems bypassed emulators/aws's patch"
    # ... and its backup of the whole table went through the patch's shim, which
    # hands the table back instead of copying it.
    tables = [args[0] for args in copied if isinstance(args[0], Table)]
    assert tables, "moto no longer backs its tables up with dynamodb.models' copy.deepcopy"
    # Nothing of the transaction stays: the patch restored what moto did not.
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"pk": {"S": "new"}})
    kept = dynamodb.get_item(TableName=table, Key={"pk": {"S": "kept"}})["Item"]
    assert kept["state"] == {"S": "before"}
    # The shim is moto's `copy` only during a transaction.
    assert vars(moto.dynamodb.models)["copy"] is copy


def test_an_event_path_is_parsed_once(aws_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """EventBridge input paths: moto imports `jsonpath_ng.ext.parse` when it
    renders a target's input, so it gets the patch's cached parser."""
    from moto.events.utils import EventTemplateParser

    parsed: list[Any] = []
    monkeypatch.setattr(server, "_jsonpath_parse", counting(parsed, server._jsonpath_parse))
    field = f"u{uuid.uuid4().hex}"
    event: Any = {"detail": {field: "seen"}, "ingestion-time": "2026-01-01T00:00:00Z"}

    for _ in range(3):
        rendered = EventTemplateParser.parse('{"got": "<x>"}', {"x": f"$.detail.{field}"}, event)
        assert rendered == {"got": "seen"}

    assert len(parsed) == 1, f"the path was parsed {len(parsed)} times"


def test_a_receive_reads_the_retention_period_through_the_patch(
    aws_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock: list[Any] = []
    monkeypatch.setattr(server, "unix_time", counting(clock, unix_time))
    sqs = boto3.client(
        "sqs",
        endpoint_url=aws_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue = sqs.create_queue(QueueName=f"patch-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="one")

    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)["Messages"]

    assert [m["Body"] for m in messages] == ["one"]
    assert clock, "moto's receive no longer checks retention through emulators/aws's patch"
