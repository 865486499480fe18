"""Rate limits at the HTTP edge, end to end (issue 13): chat served by uvicorn
over real RabbitMQ, moto server and the Chime emulator, as two replicas that
share one rate-limit table. 100 rapid posts from one customer: the configured
burst goes through, the rest is 429 `rate_limited` with `Retry-After`, and
another customer posting meanwhile is unaffected."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import REGISTRY

from services.chat.bootstrap import definition
from services.chat.settings import ChatSettings
from shared.auth import mint_local_token
from shared.service import create_platform_app
from tests.chat.conftest import chat_settings
from tests.support import drop_topology, serving

MESSAGES = "/chat/channels/{channel_id}/messages"
BURST = 12
# A slow refill, so that the count of posts admitted is the burst, exactly,
# however long the 100 posts take on a busy machine.
POSTS = f"POST {MESSAGES}=1/min burst {BURST}"


@dataclass
class Replicas:
    settings: ChatSettings
    http: list[httpx.AsyncClient]

    def token(self, sub: str, *groups: str) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(self.settings, sub, groups)}"}

    async def customer_channel(self, customer: str, manager: str) -> str:
        # chat knows people's roles from their own tokens (no user pool here)
        for who, role in ((customer, "customer"), (manager, "manager")):
            seen = await self.http[0].get("/chat/channels", headers=self.token(who, role))
            assert seen.status_code == 200, seen.text
        answer = await self.http[0].put(
            f"/chat/customers/{customer}/manager",
            json={"manager_id": manager},
            headers=self.token("admin-rl", "admin"),
        )
        assert answer.status_code == 200, answer.text
        channel_id: str = answer.json()["customer_channel"]["channel_id"]
        return channel_id


@pytest.fixture(scope="module")
async def replicas(amqp_url: str, moto_url: str, chime_url: str) -> AsyncIterator[Replicas]:
    test_id = f"rl{uuid.uuid4().hex[:8]}"
    settings = chat_settings(
        amqp_url,
        moto_url,
        chime_url,
        test_id,
        rate_limit_routes=POSTS,
        rate_limit_timeout_seconds=10,  # this test counts exactly: never fail open
    )
    one = create_platform_app([definition], settings={"chat": settings})
    two = create_platform_app([definition], settings={"chat": settings})
    try:
        async with (
            serving(one) as first,
            serving(two) as second,
            httpx.AsyncClient(base_url=first, timeout=60) as a,
            httpx.AsyncClient(base_url=second, timeout=60) as b,
        ):
            yield Replicas(settings, [a, b])
    finally:
        await drop_topology(settings)


def refused(route: str) -> float:
    labels = {"method": "POST", "route": route}
    return REGISTRY.get_sample_value("belfry_rate_limit_refused_total", labels) or 0.0


def failed_open() -> float:
    """Requests let through unchecked, whatever the reason."""
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "belfry_rate_limit_failed_open"
        for sample in family.samples
        if sample.name == "belfry_rate_limit_failed_open_total"
    )


async def test_a_flooding_customer_gets_429_after_the_burst_and_another_is_unaffected(
    replicas: Replicas,
) -> None:
    carl, cora = f"carl-{uuid.uuid4().hex[:6]}", f"cora-{uuid.uuid4().hex[:6]}"
    carls = await replicas.customer_channel(carl, f"mia-{uuid.uuid4().hex[:6]}")
    coras = await replicas.customer_channel(cora, f"max-{uuid.uuid4().hex[:6]}")
    as_carl, as_cora = replicas.token(carl, "customer"), replicas.token(cora, "customer")
    refused_before, failed_before = refused(MESSAGES), failed_open()

    answers: list[httpx.Response] = []
    coras_answers: list[httpx.Response] = []
    for n in range(100):
        # every other post to the other replica: the budget is the user's, not a process's
        http = replicas.http[n % 2]
        answers.append(
            await http.post(
                f"/chat/channels/{carls}/messages",
                json={"content": f"spam {n}", "mentions": [], "attachment_ids": []},
                headers=as_carl,
            )
        )
        if n % 20 == 10:  # cora, meanwhile, on both replicas
            for http in replicas.http:
                coras_answers.append(
                    await http.post(
                        f"/chat/channels/{coras}/messages",
                        json={"content": f"hello {n}", "mentions": [], "attachment_ids": []},
                        headers=as_cora,
                    )
                )

    # A person's first post on each replica is admitted there alone (`FirstHere`),
    # then every post is checked against the one shared budget.
    admitted = BURST + len(replicas.http)
    statuses = [a.status_code for a in answers]
    assert statuses == [201] * admitted + [429] * (100 - admitted), " ".join(map(str, statuses))
    for answer in answers[admitted:]:
        assert answer.json()["error"]["code"] == "rate_limited"
        assert set(answer.json()["error"]) <= {"code", "message", "details"}
        retry_after = int(answer.headers["retry-after"])
        assert 1 <= retry_after <= 60  # one post a minute
    assert [a.status_code for a in coras_answers] == [201] * 10, coras_answers[0].text
    assert refused(MESSAGES) == refused_before + 100 - admitted
    assert failed_open() == failed_before

    # only the admitted posts reached chat
    history = await replicas.http[0].get(
        f"/chat/channels/{carls}/messages", params={"limit": 100}, headers=as_carl
    )
    assert history.status_code == 200, history.text
    contents = {m["content"] for m in history.json()["messages"]}
    assert contents
    assert contents <= {f"spam {n}" for n in range(admitted)}
