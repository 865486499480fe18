"""DynamoDB plumbing every service shares, so that each adapter speaks its own
tables and nothing else: table specs, item (de)serialisation, transactions
whose failures come back typed (`ConditionFailed`, `TransactionConflict`),
conditional writes, every page of a Query, BatchGetItem with its unprocessed
keys, and the retry of a write that raced another transaction."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from shared.logging import get_logger

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = get_logger("belfry.dynamo")

T = TypeVar("T")
TransactItem = dict[str, Any]
MAX_TRANSACT_ITEMS = 100

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values -> DynamoDB attribute values (None values are left out)."""
    return {k: _serializer.serialize(_plain(v)) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values -> Python values (numbers as int when integral)."""
    return {k: _number(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_number(v) for v in value]
    if isinstance(value, set):
        return {_number(v) for v in value}
    return value


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: str
    range_key: str | None = None
    hash_type: str = "S"
    range_type: str = "S"
    projection: str = "ALL"


@dataclass(frozen=True)
class TableSpec:
    """A table as a service declares it; the name is `<prefix>-<service>-<suffix>`."""

    suffix: str
    hash_key: str
    range_key: str | None = None
    hash_type: str = "S"
    range_type: str = "S"
    indexes: tuple[Index, ...] = field(default_factory=tuple)
    ttl_attribute: str | None = None

    def name(self, prefix: str, service: str) -> str:
        return f"{prefix}-{service}-{self.suffix}"


async def ensure_tables(
    client: DynamoDBClient, prefix: str, service: str, specs: Sequence[TableSpec]
) -> dict[str, str]:
    """Create the tables that do not exist yet (on-demand capacity), with TTL.

    Production tables come from infrastructure code (deploy/README.md); this
    serves local runs, tests and first deployments. Returns suffix -> name.
    """
    names: dict[str, str] = {}
    for spec in specs:
        name = spec.name(prefix, service)
        names[spec.suffix] = name
        try:
            await client.describe_table(TableName=name)
            continue
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        await _create(client, name, spec)
    return names


async def _create(client: DynamoDBClient, name: str, spec: TableSpec) -> None:
    attributes = {spec.hash_key: spec.hash_type}
    keys: list[Any] = [{"AttributeName": spec.hash_key, "KeyType": "HASH"}]
    if spec.range_key:
        attributes[spec.range_key] = spec.range_type
        keys.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
    indexes: list[Any] = []
    for index in spec.indexes:
        attributes[index.hash_key] = index.hash_type
        schema: list[Any] = [{"AttributeName": index.hash_key, "KeyType": "HASH"}]
        if index.range_key:
            attributes[index.range_key] = index.range_type
            schema.append({"AttributeName": index.range_key, "KeyType": "RANGE"})
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": schema,
                "Projection": {"ProjectionType": index.projection},
            }
        )
    extra: dict[str, Any] = {"GlobalSecondaryIndexes": indexes} if indexes else {}
    try:
        await client.create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": k, "AttributeType": t}  # type: ignore[typeddict-item]
                for k, t in attributes.items()
            ],
            KeySchema=keys,
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
    except ClientError as exc:  # another replica created it first
        if error_code(exc) != "ResourceInUseException":
            raise
    waiter = client.get_waiter("table_exists")
    await waiter.wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    if spec.ttl_attribute:
        try:
            await client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        except ClientError as exc:  # already enabled by a concurrent creator
            if error_code(exc) != "ValidationException":
                raise
    log.info("dynamo.table_created", table=name)


class ConditionFailed(Exception):
    """A transaction was cancelled because conditions failed; `indexes` says which
    of its items (positions in the list given to `transact`)."""

    def __init__(self, indexes: Sequence[int], reasons: Sequence[str]) -> None:
        super().__init__(f"conditions failed at items {list(indexes)}")
        self.indexes = tuple(indexes)
        self.reasons = tuple(reasons)


class TransactionConflict(Exception):
    """DynamoDB cancelled the write because another transaction held one of its
    items at that moment (a busy row): nothing was written, and trying again is
    safe. `indexes`: the items that conflicted, where DynamoDB says so."""

    def __init__(self, indexes: Sequence[int] = ()) -> None:
        super().__init__(f"transaction conflict at items {list(indexes)}")
        self.indexes = tuple(indexes)


async def transact(
    client: DynamoDBClient, items: Sequence[TransactItem], *, token: str | None = None
) -> None:
    """One TransactWriteItems; a failed condition raises `ConditionFailed`, a
    race with another transaction `TransactionConflict`.

    `token` (ClientRequestToken) makes a retried call idempotent for 10 minutes.
    """
    if not items:
        return
    if len(items) > MAX_TRANSACT_ITEMS:
        raise ValueError(f"a transaction takes at most {MAX_TRANSACT_ITEMS} items")
    extra: dict[str, Any] = {"ClientRequestToken": token} if token else {}
    try:
        await client.transact_write_items(TransactItems=list(items), **extra)  # type: ignore[arg-type]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") != "TransactionCanceledException":
            raise
        reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
        if not reasons:  # some stand-ins put them only in the message
            reasons = _reasons_from_message(error.get("Message", ""))
        failed = [i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"]
        if failed:
            raise ConditionFailed(failed, reasons) from exc
        conflicts = [i for i, code in enumerate(reasons) if code == "TransactionConflict"]
        if conflicts or "TransactionConflict" in error.get("Message", ""):
            raise TransactionConflict(conflicts) from exc
        raise


def _reasons_from_message(message: str) -> list[str]:
    # "Transaction cancelled, please refer cancellation reasons for specific
    #  reasons [None, ConditionalCheckFailed]"
    start, end = message.rfind("["), message.rfind("]")
    if start == -1 or end < start:
        return []
    return [part.strip() for part in message[start + 1 : end].split(",")]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def retry_conflicts(
    write: Callable[[], Awaitable[T]], attempts: int = 4, base_delay: float = 0.02
) -> T:
    """Run `write`, again after a jittered pause while it races other
    transactions (`TransactionConflict`, or a single-item write refused with
    TransactionConflictException); the last conflict is raised."""
    for attempt in range(attempts):
        try:
            return await write()
        except (TransactionConflict, ClientError) as exc:
            conflict = isinstance(exc, TransactionConflict) or (
                error_code(exc) == "TransactionConflictException"
            )
            if not conflict or attempt == attempts - 1:
                raise
        await asyncio.sleep(random.uniform(0, base_delay * 2**attempt))
    raise AssertionError("unreachable")


async def conditional(write: Awaitable[object]) -> bool:
    """Await a conditional PutItem/UpdateItem/DeleteItem: True if it was applied,
    False if its condition failed (any other error is raised)."""
    try:
        await write
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


async def query_pages(client: DynamoDBClient, **params: Any) -> AsyncIterator[dict[str, Any]]:
    """Every page of a Query, in order (`ExclusiveStartKey` followed)."""
    start: dict[str, Any] | None = None
    while True:
        extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        response: dict[str, Any] = await client.query(**params, **extra)  # type: ignore[assignment]
        yield response
        start = response.get("LastEvaluatedKey")
        if not start:
            return


async def query_all(client: DynamoDBClient, **params: Any) -> list[dict[str, Any]]:
    """Every item a Query matches (raw attribute values), all pages."""
    return [item async for page in query_pages(client, **params) for item in page.get("Items", [])]


async def count_all(client: DynamoDBClient, **params: Any) -> int:
    """How many items a Query matches (`Select=COUNT`), all pages."""
    return sum(
        [int(p.get("Count", 0)) async for p in query_pages(client, Select="COUNT", **params)]
    )


BATCH_GET_MAX = 100  # BatchGetItem's limit of keys per call


async def batch_get(
    client: DynamoDBClient,
    keys: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    consistent: bool = True,
    attempts: int = 8,
) -> dict[str, list[dict[str, Any]]]:
    """The items of any number of keys in any tables (table -> raw items, in no
    particular order; missing keys are absent), 100 keys a call. Keys DynamoDB
    leaves unprocessed (throttling) are asked for again with exponential back-off;
    after `attempts` rounds the call fails like a throttled DynamoDB call."""
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in keys}
    wanted = [(table, dict(key)) for table, table_keys in keys.items() for key in table_keys]
    for start in range(0, len(wanted), BATCH_GET_MAX):
        request: dict[str, Any] = {}
        for table, key in wanted[start : start + BATCH_GET_MAX]:
            request.setdefault(table, {"Keys": [], "ConsistentRead": consistent})["Keys"].append(
                key
            )
        for attempt in range(attempts):
            response = await client.batch_get_item(RequestItems=request)
            for table, items in response.get("Responses", {}).items():
                found[table].extend(items)
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                break
            await asyncio.sleep(min(1.0, 0.01 * 2**attempt) * random.uniform(0.5, 1.5))
        else:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ProvisionedThroughputExceededException",
                        "Message": f"keys still unprocessed after {attempts} BatchGetItem calls",
                    }
                },
                "BatchGetItem",
            )
    return found


async def batch_get_table(
    client: DynamoDBClient, table: str, keys: Sequence[Mapping[str, Any]], **options: Any
) -> list[dict[str, Any]]:
    """`batch_get` of one table."""
    return (await batch_get(client, {table: keys}, **options))[table]
