"""The HTTP edge: every failure is JSON with a code, never a 500, whatever
the room id or the caller's identity."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rooms.conftest import Rooms

pytestmark = pytest.mark.amqp


def assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_requests_without_a_valid_token_are_refused(rooms: Rooms) -> None:
    room_id = await rooms.activate()
    for method, path in (
        ("GET", "/rooms"),
        ("GET", f"/rooms/{room_id}"),
        ("POST", f"/rooms/{room_id}/join"),
        ("POST", f"/rooms/{room_id}/leave"),
        ("GET", f"/rooms/{room_id}/attendees"),
    ):
        missing = await rooms.client.request(method, path)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] in ("unauthorized", "invalid_token")
        forged = await rooms.client.request(
            method, path, headers={"authorization": "Bearer not.a.jwt"}
        )
        assert forged.status_code == 401
    assert (await rooms.chime.counters())["calls"] == {}


async def test_unknown_and_malformed_room_ids(rooms: Rooms) -> None:
    user = rooms.auth("ada")
    for method, suffix in (("GET", ""), ("POST", "/join"), ("GET", "/attendees")):
        unknown = await rooms.client.request(method, f"/rooms/never-seen{suffix}", headers=user)
        assert_json_error(unknown, 404, "room_not_found")
        too_long = await rooms.client.request(method, f"/rooms/{'x' * 129}{suffix}", headers=user)
        assert_json_error(too_long, 422, "validation_error")
    wrong_method = await rooms.client.delete("/rooms/never-seen/join", headers=user)
    assert_json_error(wrong_method, 405, "method_not_allowed")


async def test_any_signed_in_user_may_list_and_join(rooms: Rooms) -> None:
    room_id = await rooms.activate()
    for user, groups in (("cy", ("customer",)), ("mo", ("manager",)), ("ad", ("admin",))):
        joined = await rooms.client.post(f"/rooms/{room_id}/join", headers=rooms.auth(user, groups))
        assert joined.status_code == 200, joined.text
    nobody = await rooms.client.post(f"/rooms/{room_id}/join", headers=rooms.auth("ng", ()))
    assert nobody.status_code == 200


ids = st.one_of(
    st.text(min_size=1, max_size=140),
    st.text(alphabet="%/?#.:@ \\\x00~-_", min_size=1, max_size=10),
    st.sampled_from(["..", ".", "%2F", "rooms", "join", "-", "a" * 128, "a" * 129]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    room=st.one_of(ids, st.just("ACTIVE")),
    user=st.text(min_size=1, max_size=100),
    action=st.sampled_from(["get", "join", "leave", "attendees", "list"]),
)
async def test_no_request_to_the_rooms_api_answers_500(
    rooms: Rooms, room: str, user: str, action: str
) -> None:
    if room == "ACTIVE":
        room = rooms.fuzz_room or await rooms.activate()
        rooms.fuzz_room = room
    path = f"/rooms/{quote(room, safe='')}"
    method, url = {
        "get": ("GET", path),
        "join": ("POST", f"{path}/join"),
        "leave": ("POST", f"{path}/leave"),
        "attendees": ("GET", f"{path}/attendees"),
        "list": ("GET", "/rooms"),
    }[action]
    response = await rooms.client.request(method, url, headers=rooms.auth(user))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}


async def test_probes_and_metrics(rooms: Rooms) -> None:
    room_id = await rooms.activate()
    assert (await rooms.join(room_id, "ada")).status_code == 200
    ready = await rooms.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"rooms.bus", "rooms.dynamodb"}
    scraped = (await rooms.client.get("/metrics")).text
    assert 'belfry_rooms_joins_total{outcome="ok"}' in scraped
    assert 'belfry_rooms_meetings_created_total{reason="first_join"}' in scraped
    assert "/rooms/{room_id}/join" in (await rooms.client.get("/openapi.json")).text
