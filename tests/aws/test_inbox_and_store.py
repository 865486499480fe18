"""The inbox and one-transaction commits, against moto server's DynamoDB."""

from __future__ import annotations

import pytest

from shared.aws import AwsClients
from shared.dynamo import ConditionFailed, TableSpec, ensure_tables, from_item, to_item
from shared.inbox import INBOX_TABLE, AlreadyInProgress, Inbox
from shared.store import Store

STATE = TableSpec("state", hash_key="pk")


@pytest.fixture
async def tables(aws: AwsClients, test_id: str) -> dict[str, str]:
    return await ensure_tables(aws.dynamodb, test_id, "svc", [INBOX_TABLE, STATE])


def put(table: str, pk: str, value: int, *, only_if_absent: bool = False) -> dict:
    item: dict = {"Put": {"TableName": table, "Item": to_item({"pk": pk, "value": value})}}
    if only_if_absent:
        item["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
    return item


async def read(aws: AwsClients, table: str, pk: str) -> dict:
    response = await aws.dynamodb.get_item(TableName=table, Key=to_item({"pk": pk}))
    return from_item(response.get("Item", {}))


async def test_a_redelivered_event_writes_its_state_once(aws: AwsClients, tables) -> None:
    store = Store(aws.dynamodb, inbox=Inbox(aws.dynamodb, tables["inbox"]))
    first = await store.commit([put(tables["state"], "room-1", 1)], once=("rooms.h", "e1"))
    second = await store.commit([put(tables["state"], "room-1", 2)], once=("rooms.h", "e1"))
    assert (first, second) == (True, False)
    assert (await read(aws, tables["state"], "room-1"))["value"] == 1  # nothing half-written
    assert await store.commit([put(tables["state"], "room-1", 3)], once=("other.h", "e1"))


async def test_a_failed_state_condition_is_reported_with_its_position(
    aws: AwsClients, tables
) -> None:
    store = Store(aws.dynamodb, inbox=Inbox(aws.dynamodb, tables["inbox"]))
    await store.commit([put(tables["state"], "x", 1)])
    with pytest.raises(ConditionFailed) as failed:
        await store.commit(
            [put(tables["state"], "y", 1), put(tables["state"], "x", 2, only_if_absent=True)],
            once=("rooms.h", "e2"),
        )
    assert failed.value.indexes == (1,)
    assert await read(aws, tables["state"], "y") == {}
    # the inbox row was not written either: the event can still be handled
    assert not await Inbox(aws.dynamodb, tables["inbox"]).seen("rooms.h", "e2")


async def test_claims_for_side_effects_outside_dynamodb(aws: AwsClients, tables) -> None:
    now = [1_000_000.0]
    inbox = Inbox(aws.dynamodb, tables["inbox"], clock=lambda: now[0])
    assert await inbox.claim("notifier.join", "e1", lease_seconds=30)
    with pytest.raises(AlreadyInProgress):
        await inbox.claim("notifier.join", "e1")  # a concurrent redelivery waits
    now[0] += 31  # the first consumer died: its lease runs out
    assert await inbox.claim("notifier.join", "e1", lease_seconds=30)
    store = Store(aws.dynamodb, inbox=inbox)
    await store.commit([put(tables["state"], "m", 1), inbox.completion("notifier.join", "e1")])
    assert await inbox.seen("notifier.join", "e1")
    assert not await inbox.claim("notifier.join", "e1")  # done: skip


async def test_a_released_claim_can_be_taken_again_at_once(aws: AwsClients, tables) -> None:
    inbox = Inbox(aws.dynamodb, tables["inbox"])
    assert await inbox.claim("notifier.join", "e9")
    await inbox.release("notifier.join", "e9")
    assert await inbox.claim("notifier.join", "e9")


async def test_expired_inbox_rows_count_as_absent(aws: AwsClients, tables) -> None:
    now = [1_000_000.0]
    inbox = Inbox(aws.dynamodb, tables["inbox"], retention_seconds=60, clock=lambda: now[0])
    store = Store(aws.dynamodb, inbox=inbox)
    assert await store.commit([], once=("c", "old"))
    assert await inbox.seen("c", "old")
    now[0] += 61  # TTL deletion is late; the row may still be there
    assert not await inbox.seen("c", "old")
    assert await store.commit([], once=("c", "old"))
