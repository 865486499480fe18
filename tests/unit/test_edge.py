"""The HTTP edge in process: which operation a request is, JSON depth, body
limits by route, and what production settings turn off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request

from shared.app import create_app
from shared.auth import create_verifier
from shared.auth.dependencies import CurrentUser
from shared.auth.local import mint_local_token
from shared.edge import Operations, json_depth_exceeds
from shared.settings import BelfrySettings

router = APIRouter()


@router.post("/things")
async def make_thing(request: Request, me: CurrentUser) -> dict[str, Any]:
    return {"size": len(await request.body()), "user": me.user_id}


@router.post("/things/{thing_id}/notes")
async def note(thing_id: str, request: Request, me: CurrentUser) -> dict[str, Any]:
    return {"size": len(await request.body())}


@router.get("/things/special")
async def special() -> dict[str, str]:
    return {"thing": "special"}


@router.get("/things/{thing_id}")
async def thing(thing_id: str) -> dict[str, str]:
    return {"thing": thing_id}


def app_with(**changes: Any) -> Any:
    settings = BelfrySettings(**changes)
    app = create_app(title="t", service="t", routers=[router])
    app.state.settings = settings
    app.state.verifier = create_verifier(settings)
    return app


@pytest.fixture
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    changes = getattr(request, "param", {})
    app = app_with(**changes)
    token = mint_local_token(app.state.settings, sub="u-1", groups=["customer"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://edge.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        yield http


@pytest.mark.parametrize(
    ("body", "limit", "deeper"),
    [
        (b"[[[]]]", 3, False),
        (b"[[[[]]]]", 3, True),
        (b'{"a": "[[[[[[[[[[", "b": [1, {"c": []}]}', 4, False),
        (b'{"a": "\\"[[[[", "b": [[[[1]]]]}', 3, True),
        (b"[" * 10_000 + b"]" * 10_000, 32, True),
        (b"not json at all", 1, False),
    ],
)
def test_json_depth(body: bytes, limit: int, deeper: bool) -> None:
    assert json_depth_exceeds(body, limit) is deeper


def test_operations_prefer_literal_segments_and_know_who_needs_a_caller() -> None:
    operations = Operations(app_with().openapi())
    special = operations.find("GET", "/things/special")
    assert special is not None
    assert special.path == "/things/special"
    some = operations.find("HEAD", "/things/t-1")
    assert some is not None
    assert (some.path, some.needs_caller) == ("/things/{thing_id}", False)
    made = operations.find("POST", "/things")
    assert made is not None
    assert made.needs_caller
    assert operations.find("DELETE", "/things") is None
    assert operations.find("GET", "/elsewhere") is None


@pytest.mark.parametrize(
    "client",
    [{"http_max_body_bytes": 100, "http_body_limits": {"POST /things": 10}}],
    indirect=True,
)
async def test_body_limits_by_route(client: httpx.AsyncClient) -> None:
    assert (await client.post("/things", content=b"x" * 10)).json()["size"] == 10
    refused = await client.post("/things", content=b"x" * 11)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    assert (await client.post("/things/t/notes", content=b"x" * 100)).status_code == 200
    assert (await client.post("/things/t/notes", content=b"x" * 101)).status_code == 413


async def test_a_bad_token_is_refused_before_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/things", content=b"[" * 1000, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_docs_and_metrics_are_served_by_default(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
        assert (await client.get(path)).status_code == 200, path


@pytest.mark.parametrize(
    "client",
    [{"http_docs": False, "http_metrics": False}, {"http_docs": False, "metrics_port": 9464}],
    indirect=True,
)
async def test_production_settings_hide_docs_and_metrics(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/things/t")).status_code == 200
