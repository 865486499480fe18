"""A frontend team's view of the contract (docs/http.md): a Python client generated
from the running platform's `/openapi.json` by openapi-python-client (warnings are
failures), imported from a temporary directory, drives a story against
`python -m services.platform`: an admin schedules a room a few seconds ahead, an
attendee sees it on the landing page and joins it; the errors it meets on the way
are the one documented `Error`. The same platform has `BELFRY_CORS_ORIGINS` set:
browsers' preflights are answered before the edge asks for a bearer."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jsonschema
import pytest

from tests.platform_run.conftest import RunningPlatform, running_platform
from tests.support import wait_until

pytestmark = pytest.mark.slow

ORIGIN = "http://localhost:5173"
PACKAGE = "belfry_generated_client"
# The one setting a generator needs: /asyncapi.yaml's body is text.
GENERATOR_CONFIG = "content_type_overrides:\n  application/yaml: text/plain\npost_hooks: []\n"


@pytest.fixture(scope="module")
def cors_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """The platform on the in-process bus, with CORS on for one origin."""
    yield from running_platform(
        "memory", None, tmp_path_factory, settings={"BELFRY_CORS_ORIGINS": ORIGIN}
    )


@pytest.fixture(scope="module")
def document(cors_platform: RunningPlatform) -> dict[str, Any]:
    response = httpx.get(f"{cors_platform.url}/openapi.json", timeout=20)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.fixture(scope="module")
def client_package(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The client generated from the served document, importable for this module only."""
    where = tmp_path_factory.mktemp("generated")
    (where / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    (where / "config.yaml").write_text(GENERATOR_CONFIG, encoding="utf-8")
    generator = Path(sys.executable).with_name("openapi-python-client")
    env = {**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(where / "openapi.json"),
            "--output-path",
            str(where / PACKAGE),
            "--config",
            str(where / "config.yaml"),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"the generator failed:\n{result.stdout}\n{result.stderr}"
    assert "Warning" not in result.stdout, result.stdout
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def generated(name: str) -> Any:
    """A module of the generated client: `generated("api.rooms.rooms_join_room")`."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def error_validator(document: dict[str, Any]) -> jsonschema.Draft202012Validator:
    schema = {"$ref": "#/components/schemas/Error", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


async def test_a_generated_client_schedules_lists_and_joins(
    cors_platform: RunningPlatform, document: dict[str, Any], client_package: ModuleType
) -> None:
    run = cors_platform.env["BELFRY_TABLE_PREFIX"]
    admin_token = await cors_platform.token(f"ada-{run}", "admin")
    attendee_token = await cors_platform.token(f"ann-{run}", "customer")
    client_module = generated("client")
    models = generated("models")
    schedule_room = generated("api.schedule.schedule_schedule_room")
    list_rooms = generated("api.rooms.rooms_list_rooms")
    get_room = generated("api.rooms.rooms_get_room")
    join_room = generated("api.rooms.rooms_join_room")
    admin = client_module.AuthenticatedClient(
        base_url=cors_platform.url, token=admin_token, timeout=httpx.Timeout(20)
    )
    attendee = client_module.AuthenticatedClient(
        base_url=cors_platform.url, token=attendee_token, timeout=httpx.Timeout(20)
    )
    stranger = client_module.Client(base_url=cors_platform.url, timeout=httpx.Timeout(20))
    wire_error = error_validator(document)

    # The admin schedules a room 2 s ahead.
    created = await schedule_room.asyncio_detailed(
        client=admin,
        body=models.ScheduleRoom(
            title=f"Generated {run}",
            start_at=int(time.time()) + 2,
            duration_minutes=5,
            topic="a client made from /openapi.json",
            media_region="eu-central-1",
        ),
    )
    assert created.status_code == 201, created.content
    room = created.parsed
    assert isinstance(room, models.ScheduledRoomOut), room
    assert room.status == models.ScheduledRoomOutStatus.SCHEDULED

    # A room in the past: a typed 422 with its own code.
    past = await schedule_room.asyncio_detailed(
        client=admin,
        body=models.ScheduleRoom(
            title=f"Too late {run}",
            start_at=int(time.time()) - 3600,
            duration_minutes=5,
            topic="past",
            media_region="eu-central-1",
        ),
    )
    assert past.status_code == 422, past.content
    assert isinstance(past.parsed, models.Error)
    assert past.parsed.error.code == "start_in_past"
    wire_error.validate(json.loads(past.content))

    # The attendee waits for it on the landing page, then joins.
    async def listed() -> bool:
        page = await list_rooms.asyncio(client=attendee)
        assert isinstance(page, models.RoomList), page
        return any(r.room_id == room.room_id for r in page.rooms)

    await wait_until(listed, timeout=20, interval=0.2, message="the room on GET /rooms")
    joined = await join_room.asyncio_detailed(room.room_id, client=attendee)
    assert joined.status_code == 200, joined.content
    assert isinstance(joined.parsed, models.JoinOut)
    assert joined.parsed.meeting["MeetingId"]
    assert joined.parsed.attendee["ExternalUserId"]

    # Errors the client meets are the one documented Error, parsed.
    unknown = await get_room.asyncio_detailed("no-such-room", client=attendee)
    assert unknown.status_code == 404
    assert isinstance(unknown.parsed, models.Error)
    assert unknown.parsed.error.code == "room_not_found"
    wire_error.validate(json.loads(unknown.content))
    anonymous = await list_rooms.asyncio_detailed(client=stranger)
    assert anonymous.status_code == 401
    assert isinstance(anonymous.parsed, models.Error)
    assert anonymous.parsed.error.code in ("unauthorized", "invalid_token")
    wire_error.validate(json.loads(anonymous.content))


async def test_the_gateway_answers_preflights_and_serves_docs_offline(
    cors_platform: RunningPlatform,
) -> None:
    async with httpx.AsyncClient(base_url=cors_platform.url, timeout=20) as http:
        preflight = await http.options(
            "/rooms/r-1/join",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        refused = await http.get("/rooms", headers={"Origin": ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ORIGIN
        other = await http.get("/rooms", headers={"Origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers
        page = await http.get("/docs")
        assert page.status_code == 200
        assert "/docs/assets/swagger-ui-bundle.js" in page.text
        assert (await http.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200
        assert (await http.get("/docs/assets/redoc.standalone.js")).status_code == 200
