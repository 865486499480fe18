"""`/schedule` over HTTP (the app over RabbitMQ and moto): validation, auth,
titles, paging and the JSON error of every refusal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.scheduler.settings import SchedulerSettings
from shared.auth import mint_local_token
from tests.scheduler.conftest import scheduler_app, unique_settings
from tests.support import drop_topology

pytestmark = pytest.mark.amqp


@pytest.fixture(scope="module")
def settings(amqp_url: str, moto_url: str) -> SchedulerSettings:
    return unique_settings(amqp_url, moto_url)


@pytest.fixture(scope="module")
async def client(settings: SchedulerSettings) -> AsyncIterator[Any]:
    async with scheduler_app(settings) as (client, _):
        yield client
    await drop_topology(settings)


_titles = iter(range(1_000_000))


def body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "title": f"Room {next(_titles)} {time.time_ns()}",
        "start_at": int(time.time()) + 3600,
        "duration_minutes": 30,
        "topic": "Weekly",
        "media_region": "eu-west-1",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not ...}


def error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error"}
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]


async def test_every_endpoint_wants_an_admin(client, settings) -> None:
    created = await client.post("/schedule", json=body())
    room = created.json()["room_id"]
    calls = [
        ("POST", "/schedule", body()),
        ("GET", "/schedule", None),
        ("GET", f"/schedule/{room}", None),
        ("PATCH", f"/schedule/{room}", {"topic": "x"}),
        ("DELETE", f"/schedule/{room}", None),
    ]
    customer = mint_local_token(settings, "cy", ["customer"])
    manager = mint_local_token(settings, "mo", ["manager"])
    for method, url, payload in calls:
        anonymous = await client.request(method, url, json=payload, headers={"authorization": ""})
        error(anonymous, 401, "unauthorized")
        garbage = await client.request(
            method, url, json=payload, headers={"authorization": "Bearer not.a.jwt"}
        )
        assert garbage.status_code == 401, garbage.text
        for token in (customer, manager):
            refused = await client.request(
                method, url, json=payload, headers={"authorization": f"Bearer {token}"}
            )
            error(refused, 403, "forbidden")
    assert (await client.get(f"/schedule/{room}")).json()["status"] == "scheduled"


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"title": ...}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 65}, "title"),
        ({"title": "bell\x07"}, "title"),
        ({"title": 7}, "title"),
        ({"duration_minutes": ...}, "duration_minutes"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": 1441}, "duration_minutes"),
        ({"duration_minutes": "30"}, "duration_minutes"),
        ({"duration_minutes": 1.5}, "duration_minutes"),
        ({"duration_minutes": True}, "duration_minutes"),
        ({"media_region": ...}, "media_region"),
        ({"media_region": "mars-north-1"}, "media_region"),
        ({"media_region": "EU-WEST-1"}, "media_region"),
        ({"topic": ...}, "topic"),
        ({"topic": "t" * 501}, "topic"),
        ({"start_at": ...}, ""),
        ({"start_time": "2030-01-01T09:00:00+00:00"}, ""),
        ({"start_at": ..., "start_time": "2030-01-01T09:00:00"}, "start_time"),
        ({"start_at": ..., "start_time": "next tuesday"}, "start_time"),
        ({"start_at": -1}, "start_at"),
        ({"start_at": 10**12}, "start_at"),
        ({"start_at": "1700000000"}, "start_at"),
        ({"room_id": "mine"}, "room_id"),
    ],
)
async def test_bad_bodies_are_422_with_the_field(client, overrides, where) -> None:
    response = await client.post("/schedule", json=body(**overrides))
    error(response, 422, "validation_error")
    assert where in response.json()["error"]["message"]


async def test_bodies_that_are_not_objects(client) -> None:
    broken = await client.post(
        "/schedule", content=b"{not json", headers={"content-type": "application/json"}
    )
    error(broken, 400, "invalid_json")
    error(await client.post("/schedule", json=[body()]), 422, "validation_error")
    error(await client.post("/schedule"), 422, "validation_error")


async def test_starts_in_the_past_or_too_far_ahead_are_refused(client) -> None:
    now = int(time.time())
    error(await client.post("/schedule", json=body(start_at=now - 300)), 422, "start_in_past")
    within_grace = await client.post("/schedule", json=body(start_at=now - 10))
    assert within_grace.status_code == 201, within_grace.text
    far = now + 400 * 86400
    error(await client.post("/schedule", json=body(start_at=far)), 422, "start_too_far")
    utc = datetime.fromtimestamp(now + 7 * 86400, UTC).replace(microsecond=0)
    local = utc.astimezone(timezone(timedelta(hours=2)))
    zoned = await client.post(
        "/schedule", json=body(start_at=..., start_time=local.isoformat(), duration_minutes=90)
    )
    assert zoned.status_code == 201, zoned.text
    room = zoned.json()
    assert room["start_at"] == int(utc.timestamp())
    assert room["start_time"] == utc.isoformat().replace("+00:00", "Z")
    assert room["end_at"] == room["start_at"] + 90 * 60


async def test_titles_are_unique_among_rooms_that_have_not_ended(client) -> None:
    title = f"Algebra {time.time_ns()}"
    first = await client.post("/schedule", json=body(title=title))
    assert first.status_code == 201, first.text
    for variant in (title, title.upper(), f"  {title.replace(' ', '   ')} "):
        error(await client.post("/schedule", json=body(title=variant)), 409, "title_taken")

    other = (await client.post("/schedule", json=body())).json()
    taken = await client.patch(f"/schedule/{other['room_id']}", json={"title": title})
    error(taken, 409, "title_taken")

    # renaming frees the old title; cancelling frees the new one
    renamed = await client.patch(
        f"/schedule/{first.json()['room_id']}", json={"title": f"{title} II"}
    )
    assert renamed.status_code == 200, renamed.text
    reuse = await client.post("/schedule", json=body(title=title))
    assert reuse.status_code == 201, reuse.text
    assert (await client.delete(f"/schedule/{first.json()['room_id']}")).status_code == 200
    again = await client.post("/schedule", json=body(title=f"{title} II"))
    assert again.status_code == 201, again.text


async def test_unknown_rooms_are_404(client) -> None:
    for method in ("GET", "DELETE"):
        error(await client.request(method, "/schedule/nope"), 404, "room_not_found")
    error(await client.patch("/schedule/nope", json={"topic": "x"}), 404, "room_not_found")
    error(await client.get(f"/schedule/{'x' * 65}"), 422, "validation_error")


async def test_patch_changes_only_what_it_names(client) -> None:
    room = (await client.post("/schedule", json=body())).json()
    url = f"/schedule/{room['room_id']}"
    for bad in (
        {},
        {"title": None},
        {"start_at": room["start_at"], "start_time": "2031-01-01T00:00:00Z"},
        {"start_time": "2031-01-01T00:00:00"},
        {"duration_minutes": 0},
        {"media_region": "nowhere"},
        {"status": "active"},
    ):
        error(await client.patch(url, json=bad), 422, "validation_error")
    error(await client.patch(url, json={"start_at": 1}), 422, "start_in_past")

    changed = await client.patch(url, json={"duration_minutes": 45, "media_region": "us-east-1"})
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert after["duration_minutes"] == 45
    assert after["end_at"] == room["start_at"] + 45 * 60
    assert after["media_region"] == "us-east-1"
    assert after["title"] == room["title"]
    assert after["revision"] == room["revision"] + 1
    assert (await client.get(url)).json() == after

    unchanged = await client.patch(url, json={"topic": after["topic"]})
    assert unchanged.json()["revision"] == after["revision"]


async def test_listing_pages_by_status_in_start_order(client) -> None:
    base = int(time.time()) + 200 * 86400  # after every other room of this module
    made = [
        (await client.post("/schedule", json=body(start_at=base + i * 60))).json()["room_id"]
        for i in (3, 1, 4, 0, 2)
    ]
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(20):
        params = {"status": "scheduled", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/schedule", params=params)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    ours = [r for r in seen if r["start_at"] >= base]
    assert [r["start_at"] for r in ours] == [base + i * 60 for i in range(5)]
    assert {r["room_id"] for r in ours} == set(made)
    assert all(r["status"] == "scheduled" for r in seen)
    starts = [r["start_at"] for r in seen]
    assert starts == sorted(starts)

    cancelled = await client.delete(f"/schedule/{made[0]}")
    assert cancelled.status_code == 200
    listed = (await client.get("/schedule", params={"status": "cancelled"})).json()
    assert made[0] in [r["room_id"] for r in listed["items"]]

    first = (await client.get("/schedule", params={"status": "scheduled", "limit": 1})).json()
    foreign = first["next_cursor"]
    assert foreign
    error(
        await client.get("/schedule", params={"status": "ended", "cursor": foreign}),
        400,
        "invalid_cursor",
    )
    for cursor in ("garbage", "eyJ4IjogMX0", "%%%"):
        error(await client.get("/schedule", params={"cursor": cursor}), 400, "invalid_cursor")
    for params in ({"status": "bogus"}, {"limit": 0}, {"limit": 101}, {"limit": "many"}):
        error(await client.get("/schedule", params=params), 422, "validation_error")


async def test_a_second_delete_is_409_room_cancelled(client) -> None:
    room = (await client.post("/schedule", json=body())).json()
    first = await client.delete(f"/schedule/{room['room_id']}")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert first.json()["cancelled_by"] == "ada"
    error(await client.delete(f"/schedule/{room['room_id']}"), 409, "room_cancelled")
    error(
        await client.patch(f"/schedule/{room['room_id']}", json={"topic": "x"}),
        409,
        "room_cancelled",
    )


async def test_concurrent_rooms_with_one_title_make_one_room(client) -> None:
    title = f"Race {time.time_ns()}"
    responses = await asyncio.gather(
        *(client.post("/schedule", json=body(title=title)) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9, [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        error(refused, 409, "title_taken")
