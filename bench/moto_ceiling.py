"""The raw baseline: how many messages/s moto server could carry if it did
nothing but the DynamoDB calls one message costs.

`ceiling(moto_url, mix)` issues, per message, the calls of `mix`
({"TransactWriteItems": (calls per message, items per call), …}, as
`bench.counted` measured them in the same run) with aiobotocore straight at
moto, from `WORKERS` concurrent loops for `SECONDS`, on a scratch table of its
own: fresh conditional Puts for the writes, keys written beforehand for the
reads. Fractions of a call per message (a group-committed transaction serves
many messages) are issued as the credit adds up.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

WORKERS = 32
SECONDS = 5.0
Mix = dict[str, tuple[float, float]]


class _Replay:
    def __init__(self, client: Any, table: str, mix: Mix) -> None:
        self._client = client
        self._table = table
        self._mix = mix
        self._seq = itertools.count()

    def _put(self) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Item": {
                "pk": {"S": f"w#{next(self._seq)}"},
                "sk": {"N": "0"},
                "data": {"S": "x" * 300},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }

    def _key(self, n: int) -> dict[str, Any]:
        return {"pk": {"S": f"r#{n % 100}"}, "sk": {"N": "0"}}

    async def seed(self) -> None:
        for start in range(0, 100, 25):
            requests: list[Any] = [
                {"PutRequest": {"Item": {**self._key(n), "data": {"S": "x" * 300}}}}
                for n in range(start, start + 25)
            ]
            await self._client.batch_write_item(RequestItems={self._table: requests})

    async def call(self, operation: str, items: float) -> None:
        c, table = self._client, self._table
        n = max(1, round(items))
        if operation == "TransactWriteItems":
            await c.transact_write_items(TransactItems=[{"Put": self._put()} for _ in range(n)])
        elif operation == "BatchWriteItem":
            requests: list[Any] = [
                {"PutRequest": {"Item": self._put()["Item"]}} for _ in range(min(n, 25))
            ]
            await c.batch_write_item(RequestItems={table: requests})
        elif operation == "BatchGetItem":
            keys = [self._key(i) for i in range(min(n, 100))]
            await c.batch_get_item(RequestItems={table: {"Keys": keys}})
        elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
            await c.put_item(**self._put())
        elif operation == "Query":
            await c.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": "r#1"}},
            )
        else:  # GetItem, and anything else: a keyed read
            await c.get_item(TableName=table, Key=self._key(1))

    async def worker(self, deadline: float) -> int:
        credit = dict.fromkeys(self._mix, 0.0)
        messages = 0
        while time.monotonic() < deadline:
            for operation, (per_message, items) in self._mix.items():
                credit[operation] += per_message
                while credit[operation] >= 1:
                    credit[operation] -= 1
                    await self.call(operation, items)
            messages += 1
        return messages


async def ceiling(moto_url: str, mix: Mix, seconds: float = SECONDS) -> float:
    """Messages/s moto sustains for `mix` alone (0.0 for an empty mix)."""
    if not any(per for per, _ in mix.values()):
        return 0.0
    table = f"ceiling-{uuid.uuid4().hex[:8]}"
    config = AioConfig(max_pool_connections=WORKERS, retries={"max_attempts": 2})
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - the local stand-in accepts any key
        config=config,
    ) as client:
        await client.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        replay = _Replay(client, table, mix)
        await replay.seed()
        began = time.monotonic()
        done = await asyncio.gather(*(replay.worker(began + seconds) for _ in range(WORKERS)))
        rate = sum(done) / (time.monotonic() - began)
        await client.delete_table(TableName=table)
    return round(rate, 1)
