"""`GET /chat/channels` for a manager in 500 channels, beside the DynamoDB calls
it costs made directly (the same run's raw baseline, so that the ratio holds
on a noisy machine).

Subprocesses: moto server, the Chime emulator and chat (`python -m
services.chat`, over RabbitMQ: AMQP_URL, default the local broker). The 500
customer channels, their summaries, the manager's memberships and read marks
are written straight into chat's tables (the read path is what is measured;
500 assignments through Chime would take minutes at Chime's rate limits).

Figures (REQUESTS sequential requests of the first page, 50 channels, or as
many as BUDGET_SECONDS allow; `requests` says how many):
- `list_channels_p50/p99`: HTTP round trip through chat (token check, the
  role lookup, the listing's DynamoDB calls, JSON).
- `list_channels_dynamodb_p50/p99`: the listing's DynamoDB calls alone: the
  four `by_activity` shard queries (in parallel; their items carry the
  summaries and a copy of the channels), then one BatchGetItem of the page's
  read marks and memberships (100 keys).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from typing import Any

import httpx
from aiobotocore.session import get_session

from bench.processes import chime_emulator, free_port, moto, running, scratch_topology, service_env
from bench.report import Report, percentile
from services.chat.adapters.reading import ACTIVITY_SHARDS, shard_of
from services.chat.settings import ChatSettings
from shared.auth import mint_local_token
from shared.dynamo import batch_get, to_item

BENCH = "chat_channels"
CHANNELS = int(os.environ.get("BENCH_CHANNELS", "500"))
REQUESTS = int(os.environ.get("BENCH_CHANNEL_REQUESTS", "200"))
BUDGET_SECONDS = float(os.environ.get("BENCH_CHANNEL_SECONDS", "30"))  # then fewer requests
PAGE = 50
MANAGER = "m-bench"
CHAT_LOG = os.environ.get("BENCH_CHAT_LOG", "/tmp/belfry-bench-chat.log")  # noqa: S108


def _rows(app: str, n: int) -> dict[str, dict[str, Any]]:
    """One customer channel's rows: channel, summary, membership, read mark."""
    channel_id = f"customer-c{n:04d}"
    message_id = f"{1_800_000_000_000 + n * 1000:013d}-{uuid.uuid4().hex[:16]}"
    seq = random.randint(1, 200)
    channel = {
        "channel_id": channel_id,
        "kind": "customer",
        "customer_id": f"c{n:04d}",
        "channel_arn": f"{app}/channel/{channel_id}",
        "manager_id": MANAGER,
    }
    return {
        "channels": {"pk": "channel", **channel},
        "summaries": {
            **channel,  # the copy every channel write keeps (adapters/reading.py)
            "listing_shard": shard_of(channel_id),
            "activity": f"{message_id}#{channel_id}",
            "seq": seq,
            "last_message": {
                "message_id": message_id,
                "excerpt": "about the invoice",
                "sender_id": f"c{n:04d}",
                "posted_at": "2027-01-15T08:00:00Z",
                "deleted": False,
            },
        },
        "memberships": {"channel_id": channel_id, "user_id": MANAGER, "reason": "assignment"},
        "read_states": {
            "user_id": MANAGER,
            "channel_id": channel_id,
            "read_seq": random.randint(0, seq),
            "mentions": [seq] if n % 7 == 0 else [],
        },
    }


async def _seed(dynamodb: Any, tables: dict[str, str], app: str) -> None:
    puts = [(tables[kind], row) for n in range(CHANNELS) for kind, row in _rows(app, n).items()]
    for start in range(0, len(puts), 25):
        request: dict[str, list[Any]] = {}
        for table, row in puts[start : start + 25]:
            request.setdefault(table, []).append({"PutRequest": {"Item": to_item(row)}})
        while request:
            response = await dynamodb.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}


async def _direct(dynamodb: Any, tables: dict[str, str]) -> None:
    """What chat's listing asks DynamoDB for, made directly."""

    async def shard(n: int) -> list[str]:
        response = await dynamodb.query(
            TableName=tables["summaries"],
            IndexName="by_activity",
            KeyConditionExpression="listing_shard = :s",
            ExpressionAttributeValues={":s": {"S": f"activity-{n}"}},
            ScanIndexForward=False,
            Limit=PAGE,
        )
        return [i["activity"]["S"] for i in response.get("Items", [])]

    found = await asyncio.gather(*(shard(n) for n in range(ACTIVITY_SHARDS)))
    page = [a.rsplit("#", 1)[1] for a in sorted((a for f in found for a in f), reverse=True)]
    page = page[:PAGE]
    await batch_get(
        dynamodb,
        {
            tables["read_states"]: [
                {"user_id": {"S": MANAGER}, "channel_id": {"S": c}} for c in page
            ],
            tables["memberships"]: [
                {"channel_id": {"S": c}, "user_id": {"S": MANAGER}} for c in page
            ],
        },
    )


async def run(report: Report) -> None:
    amqp = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = f"benchlist{uuid.uuid4().hex[:6]}"
    settings = ChatSettings()
    port = free_port()
    async with scratch_topology(amqp, prefix):
        await _measure(report, amqp, prefix, settings, port)


async def _measure(
    report: Report, amqp: str, prefix: str, settings: ChatSettings, port: int
) -> None:
    with moto() as (moto_url, _), chime_emulator() as (chime_url, _):
        env = {
            **service_env(amqp, prefix, moto_url, chime_url),
            "BELFRY_CHAT_APP_INSTANCE_NAME": prefix,
            "BELFRY_CHAT_ATTACHMENTS_BUCKET": f"{prefix}-attachments",
            "BELFRY_PORT": str(port),
        }
        base = f"http://127.0.0.1:{port}"
        with running(["services.chat"], f"{base}/readyz", env, CHAT_LOG):
            tables = {
                t: f"{prefix}-chat-{t}"
                for t in ("channels", "summaries", "read_states", "memberships")
            }
            async with (
                get_session().create_client(
                    "dynamodb",
                    endpoint_url=moto_url,
                    region_name="us-east-1",
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench",  # noqa: S106 (moto's)
                ) as dynamodb,
                httpx.AsyncClient(base_url=base, timeout=30) as http,
            ):
                await _seed(dynamodb, tables, "arn:aws:chime:us-east-1:123456789012:app-instance/x")
                print(f"{BENCH}: seeded {CHANNELS} channels", file=sys.stderr)
                token = mint_local_token(settings, MANAGER, ["manager"])
                headers = {"authorization": f"Bearer {token}"}
                api: list[float] = []
                direct: list[float] = []
                first = await http.get("/chat/channels", headers=headers)  # warm-up
                assert first.status_code == 200, first.text
                listed = len(first.json()["channels"])
                for _ in range(10):
                    await _direct(dynamodb, tables)
                deadline = time.monotonic() + BUDGET_SECONDS
                while len(api) < REQUESTS and time.monotonic() < deadline:
                    # interleaved: both see the same machine at the same moments
                    started = time.perf_counter()
                    response = await http.get("/chat/channels", headers=headers)
                    api.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    started = time.perf_counter()
                    await _direct(dynamodb, tables)
                    direct.append(time.perf_counter() - started)
    extra = {"channels": CHANNELS, "page": listed, "requests": len(api)}
    report.latency(BENCH, "list_channels", api, **extra)
    report.latency(BENCH, "list_channels_dynamodb", direct, **extra)
    report.emit(
        BENCH,
        "list_channels_p99_over_dynamodb_p99",
        round(percentile(api, 99) / percentile(direct, 99), 2),
        "ratio",
        **extra,
    )
