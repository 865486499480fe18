"""Hypothesis over chat's endpoints with arbitrary ids, bodies, cursors and
callers: never a 500, always the JSON error shape."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chat.conftest import ChatWorld

pytestmark = pytest.mark.amqp

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "code" in response.json()["error"], response.text


async def test_no_endpoint_answers_500(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    assigned = await world.assign(c1, m1)
    channel_ids = [
        assigned["customer_channel"]["channel_id"],
        assigned["managers_channel"]["channel_id"],
    ]
    callers = {
        "customer": world.token(c1, "customer"),
        "manager": world.token(m1, "manager"),
        "stranger": world.token(world.person("c"), "customer"),
        "admin": world.token("admin-h", "admin"),
        "none": {},
        "garbage": {"authorization": "Bearer not.a.jwt"},
    }
    ids = st.sampled_from([*channel_ids, c1, m1, "customer-x", "h.zz"]) | st.text(
        min_size=1, max_size=150
    )
    who = st.sampled_from(sorted(callers))
    bodies = (
        st.fixed_dictionaries(
            {},
            optional={
                "content": st.text(max_size=60) | JSON,
                "mentions": st.lists(st.sampled_from([c1, m1, "ghost"]) | st.text(max_size=8))
                | JSON,
                "attachment_ids": st.lists(st.text(max_size=40), max_size=3) | JSON,
                "manager_id": st.sampled_from([m1, c1, "m-new"]) | st.text(max_size=20) | JSON,
                "name": st.text(max_size=40),
                "size": st.integers(min_value=-5, max_value=10**12),
                "content_type": st.sampled_from(["text/plain", "image/png", "x/y", ""]),
            },
        )
        | JSON
    )
    cursor = st.none() | st.text(max_size=80) | st.sampled_from(["eyJhIjoxfQ", "e30", "===="])

    def request(client: httpx.Client, caller: str, case: tuple[Any, ...]) -> httpx.Response:
        endpoint, ident, body, cur = case
        path_id = quote(ident, safe="")
        headers = callers[caller]
        params = {"cursor": cur} if cur is not None else {}
        kind = body.get("content_type", "text/plain") if isinstance(body, dict) else "x/y"
        calls = [
            lambda: client.put(f"/chat/customers/{path_id}/manager", json=body, headers=headers),
            lambda: client.get("/chat/channels", params=params, headers=headers),
            lambda: client.post(f"/chat/channels/{path_id}/join", headers=headers),
            lambda: client.get(
                f"/chat/channels/{path_id}/messages", params=params, headers=headers
            ),
            lambda: client.post(f"/chat/channels/{path_id}/messages", json=body, headers=headers),
            lambda: client.post("/chat/attachments", json=body, headers=headers),
            lambda: client.post(
                "/chat/attachments",
                files={"file": (ident[:40], str(body).encode()[:200], str(kind))},
                headers=headers,
            ),
            lambda: client.get(f"/chat/attachments/{path_id}", headers=headers),
        ]
        response: httpx.Response = calls[endpoint]()
        return response

    def explore() -> None:
        with httpx.Client(base_url=world.base_url, timeout=30) as client:

            @settings(
                max_examples=150,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            )
            @given(who, st.tuples(st.integers(0, 7), ids, bodies, cursor))
            def one(caller: str, case: tuple[Any, ...]) -> None:
                _check(request(client, caller, case))

            one()

    await asyncio.to_thread(explore)
