"""Hypothesis throws near-valid and garbage requests at every `/schedule`
endpoint (the app over RabbitMQ and moto): every answer is a documented status
with the JSON error shape, never a 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scheduler.bootstrap import definition
from services.scheduler.domain import MEDIA_REGIONS
from services.scheduler.settings import SchedulerSettings
from shared.service import create_platform_app
from tests.scheduler.conftest import admin_headers, unique_settings
from tests.support import drop_topology

pytestmark = pytest.mark.amqp

EXPECTED = {200, 201, 400, 404, 405, 409, 422}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NOW = int(time.time())
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=80),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
titles = st.one_of(st.text(max_size=70), st.text(min_size=60, max_size=300), json_values)
starts = st.one_of(
    st.integers(NOW - 600, NOW + 400 * 86400),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
start_times = st.one_of(
    st.datetimes(timezones=st.just(None) | st.timezones()).map(lambda d: d.isoformat()),
    st.text(max_size=30),
    json_values,
)
durations = st.one_of(st.integers(-5, 1500), json_values)
regions = st.one_of(st.sampled_from(sorted(MEDIA_REGIONS)), st.text(max_size=20), json_values)
topics = st.one_of(st.text(max_size=600), json_values)


def room_fields(required: bool) -> st.SearchStrategy[dict[str, Any]]:
    fields = {
        "title": titles,
        "start_at": starts,
        "start_time": start_times,
        "duration_minutes": durations,
        "topic": topics,
        "media_region": regions,
    }
    strategy = st.fixed_dictionaries(
        {k: fields[k] for k in ("title", "duration_minutes", "topic", "media_region")}
        if required
        else {},
        optional={
            **({} if required else fields),
            "start_at": starts,
            "start_time": start_times,
            "extra": json_values,
        },
    )
    return st.one_of(strategy, json_values)


@pytest.fixture(scope="module")
def fuzz_settings(amqp_url: str, moto_url: str) -> Iterator[SchedulerSettings]:
    # many requests as one admin: the rate limit would answer most of them
    config = unique_settings(
        amqp_url, moto_url, scheduler_tick_seconds=0.5, rate_limit_enabled=False
    )
    yield config
    asyncio.run(drop_topology(config))


@pytest.fixture(scope="module")
def http(fuzz_settings: SchedulerSettings) -> Iterator[TestClient]:
    app = create_platform_app([definition], settings={"scheduler": fuzz_settings})
    with TestClient(app, headers=admin_headers(fuzz_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def room_id(http: TestClient) -> str:
    created = http.post(
        "/schedule",
        json={
            "title": f"fuzz target {time.time_ns()}",
            "start_at": int(time.time()) + 30 * 86400,
            "duration_minutes": 60,
            "topic": "",
            "media_region": "eu-west-1",
        },
    )
    assert created.status_code == 201, created.text
    room: str = created.json()["room_id"]
    return room


def check(response: Any) -> None:
    assert response.status_code in EXPECTED, (response.status_code, response.text)
    payload = response.json()
    if response.status_code >= 400:
        assert set(payload) == {"error"}, payload
        assert isinstance(payload["error"]["code"], str)
        assert isinstance(payload["error"]["message"], str)


@FUZZ
@given(payload=room_fields(required=True))
def test_post_never_fails_unexpectedly(http: TestClient, payload: Any) -> None:
    check(http.post("/schedule", json=payload))


@FUZZ
@given(payload=room_fields(required=False))
def test_patch_never_fails_unexpectedly(http: TestClient, room_id: str, payload: Any) -> None:
    response = http.patch(f"/schedule/{room_id}", json=payload)
    check(response)
    if response.status_code == 200:
        # put it back far ahead so later examples can still change it
        http.patch(f"/schedule/{room_id}", json={"start_at": int(time.time()) + 30 * 86400})


@FUZZ
@given(
    path=st.text(min_size=1, max_size=80),
    method=st.sampled_from(["GET", "PATCH", "DELETE"]),
    payload=json_values,
)
def test_any_room_path_never_fails_unexpectedly(
    http: TestClient, path: str, method: str, payload: Any
) -> None:
    url = f"/schedule/{quote(path, safe='')}"
    check(http.request(method, url, json=payload if method == "PATCH" else None))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "cursor", "limit", "other"]),
        st.one_of(
            st.sampled_from(["scheduled", "active", "ended", "cancelled"]),
            st.text(max_size=60),
            st.integers(-5, 500).map(str),
        ),
    )
)
def test_listing_never_fails_unexpectedly(http: TestClient, params: dict[str, str]) -> None:
    check(http.get("/schedule", params=params))
