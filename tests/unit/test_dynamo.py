"""The DynamoDB helpers every adapter shares, the unit of work and the page
cursors, over a recording fake client (what DynamoDB answers is scripted)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from shared.dynamo import (
    ConditionFailed,
    TransactionConflict,
    batch_get,
    conditional,
    count_all,
    query_all,
    retry_conflicts,
    transact,
)
from shared.pages import InvalidCursor, decode_cursor, encode_cursor, query_page
from shared.store import Busy, Stale, Store


def error(code: str, reasons: list[str] | None = None, message: str = "") -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "Op")  # type: ignore[arg-type]


class FakeClient:
    """Answers scripted per operation; records every call."""

    def __init__(self, **answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _next(self, operation: str, params: dict[str, Any]) -> Any:
        self.calls.append((operation, params))
        answer = self.answers[operation].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def transact_write_items(self, **params: Any) -> Any:
        return self._next("transact_write_items", params)

    async def query(self, **params: Any) -> Any:
        return self._next("query", params)

    async def batch_get_item(self, **params: Any) -> Any:
        return self._next("batch_get_item", params)

    async def update_item(self, **params: Any) -> Any:
        return self._next("update_item", params)


def client(fake: FakeClient) -> Any:
    return cast(Any, fake)


async def test_a_cancelled_transaction_says_which_items_failed_and_why() -> None:
    fake = FakeClient(
        transact_write_items=[
            error("TransactionCanceledException", ["None", "ConditionalCheckFailed"]),
            error("TransactionCanceledException", ["TransactionConflict", "None"]),
            error("TransactionCanceledException", message="reasons [None, TransactionConflict]"),
            error("ValidationException"),
        ]
    )
    with pytest.raises(ConditionFailed) as failed:
        await transact(client(fake), [{}, {}])
    assert failed.value.indexes == (1,)
    with pytest.raises(TransactionConflict) as raced:
        await transact(client(fake), [{}, {}])
    assert raced.value.indexes == (0,)
    with pytest.raises(TransactionConflict) as from_message:  # stand-ins without reasons
        await transact(client(fake), [{}, {}])
    assert from_message.value.indexes == (1,)
    with pytest.raises(ClientError):
        await transact(client(fake), [{}])


async def test_conflicts_are_retried_a_few_times_then_raised() -> None:
    attempts: list[int] = []

    async def write() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise TransactionConflict([0])
        return "written"

    assert await retry_conflicts(write, base_delay=0) == "written"
    assert len(attempts) == 3

    async def always() -> None:
        raise TransactionConflict([0])

    with pytest.raises(TransactionConflict):
        await retry_conflicts(always, attempts=2, base_delay=0)

    async def other() -> None:
        raise error("ValidationException")

    with pytest.raises(ClientError):
        await retry_conflicts(other, base_delay=0)


async def test_a_conditional_write_answers_whether_it_applied() -> None:
    fake = FakeClient(
        update_item=[{}, error("ConditionalCheckFailedException"), error("Throttling")]
    )
    assert await conditional(fake.update_item(Key={}))
    assert not await conditional(fake.update_item(Key={}))
    with pytest.raises(ClientError):
        await conditional(fake.update_item(Key={}))


async def test_every_page_of_a_query() -> None:
    last = {"pk": {"S": "a"}}
    fake = FakeClient(
        query=[
            {"Items": [{"n": 1}], "LastEvaluatedKey": last},
            {"Items": [{"n": 2}]},
            {"Count": 3, "LastEvaluatedKey": last},
            {"Count": 4},
        ]
    )
    assert await query_all(client(fake), TableName="t") == [{"n": 1}, {"n": 2}]
    assert fake.calls[1][1]["ExclusiveStartKey"] == last
    assert await count_all(client(fake), TableName="t") == 7
    assert fake.calls[2][1]["Select"] == "COUNT"


async def test_batch_get_chunks_by_100_and_asks_again_for_unprocessed_keys() -> None:
    keys = [{"id": {"S": str(n)}} for n in range(150)]
    fake = FakeClient(
        batch_get_item=[
            {"Responses": {"t": keys[:90]}, "UnprocessedKeys": {"t": {"Keys": keys[90:100]}}},
            {"Responses": {"t": keys[90:100]}},
            {"Responses": {"t": keys[100:], "u": [{"id": {"S": "u"}}]}},
        ]
    )
    found = await batch_get(client(fake), {"t": keys, "u": [{"id": {"S": "u"}}]})
    assert sorted(i["id"]["S"] for i in found["t"]) == sorted(str(n) for n in range(150))
    assert found["u"] == [{"id": {"S": "u"}}]
    assert [len(c[1]["RequestItems"]["t"]["Keys"]) for c in fake.calls] == [100, 10, 50]


async def test_batch_get_gives_up_instead_of_looping_forever() -> None:
    stuck = {"Responses": {}, "UnprocessedKeys": {"t": {"Keys": [{"id": {"S": "1"}}]}}}
    fake = FakeClient(batch_get_item=[stuck] * 3)
    with pytest.raises(ClientError, match="unprocessed"):
        await batch_get(client(fake), {"t": [{"id": {"S": "1"}}]}, attempts=3)
    assert len(fake.calls) == 3


def test_a_cursor_opens_only_its_own_listing() -> None:
    key = {"channel_id": {"S": "c1"}, "message_id": {"S": "m9"}}
    cursor = encode_cursor(key)
    assert cursor is not None
    names = ("channel_id", "message_id")
    assert decode_cursor(cursor, names=names, fixed={"channel_id": "c1"}) == key
    assert decode_cursor(None, names=names) is None
    bad = [
        cursor + "x",  # not what we encoded
        encode_cursor({**key, "extra": {"S": "1"}}),  # other attributes
        encode_cursor({**key, "message_id": {"S": "x" * 2000}}),  # too long
        encode_cursor({**key, "message_id": {"B": "eA=="}}),  # not a string or number
        "!!!",
    ]
    for token in bad:
        with pytest.raises(InvalidCursor):
            decode_cursor(token, names=names, fixed={"channel_id": "c1"})
    with pytest.raises(InvalidCursor):  # another channel's page
        decode_cursor(cursor, names=names, fixed={"channel_id": "c2"})


async def test_a_page_and_the_cursor_of_the_next() -> None:
    last = {"pk": {"S": "p"}, "sk": {"S": "5"}}
    fake = FakeClient(query=[{"Items": [{"sk": 1}], "LastEvaluatedKey": last}, {"Items": []}])
    items, cursor = await query_page(client(fake), None, names=("pk", "sk"), TableName="t")
    assert items == [{"sk": 1}]
    assert "ExclusiveStartKey" not in fake.calls[0][1]
    assert await query_page(client(fake), cursor, names=("pk", "sk"), TableName="t") == ([], None)
    assert fake.calls[1][1]["ExclusiveStartKey"] == last


# --- the unit of work ---------------------------------------------------------------


async def test_a_unit_of_work_that_fails_takes_its_side_effects_back() -> None:
    undone: list[str] = []
    fake = FakeClient(
        transact_write_items=[
            error("TransactionCanceledException", ["None", "ConditionalCheckFailed"]),
            {},
        ]
    )
    store = Store(client(fake))

    async def undo(name: str) -> None:
        undone.append(name)

    work = store.unit()
    work.add({"Put": {}}, "channel")
    work.add({"Put": {}}, "attachment")
    work.compensate(lambda: undo("first"))
    work.compensate(lambda: undo("second"))
    with pytest.raises(Stale) as stale:
        await work.commit()
    assert stale.value.roles == ("attachment",)
    assert undone == ["second", "first"]  # newest first, once

    async with store.unit() as ok:
        ok.add({"Put": {}}, "message")
        ok.compensate(lambda: undo("kept"))
        assert await ok.commit()
    assert undone == ["second", "first"]  # committed work is never taken back


async def test_a_unit_of_work_failing_before_its_commit_is_undone_too() -> None:
    undone: list[str] = []

    async def undo() -> None:
        undone.append("message")

    async def use_case() -> None:
        async with Store(client(FakeClient())).unit() as work:
            work.compensate(undo)
            raise RuntimeError("a later step failed")

    with pytest.raises(RuntimeError):
        await use_case()
    assert undone == ["message"]


async def test_a_unit_of_work_that_keeps_racing_is_busy() -> None:
    race = error("TransactionCanceledException", ["TransactionConflict"])
    fake = FakeClient(transact_write_items=[race] * 4)
    work = Store(client(fake)).unit()
    work.add({"Put": {}}, "room")
    with pytest.raises(Busy):
        await work.commit()
    assert len(fake.calls) == 4
