"""The HTTP contract frontend teams generate clients from (docs/http.md): stable,
unique operationIds and schema names, one `Error` schema on every error response
(and what the wire really answers validates against it), examples on request
bodies, Swagger UI and ReDoc served offline, opt-in CORS in front of the edge."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from services.platform.composition import definitions
from shared.app import create_app
from shared.auth import create_verifier
from shared.auth.dependencies import CurrentUser
from shared.auth.local import mint_local_token
from shared.bus import PublishFailed
from shared.errors import NotFound
from shared.openapi import CODES_KEY, DOCS_ASSETS, ERROR_REF, OPERATION_ID, errors
from shared.service import create_platform_app
from shared.settings import BelfrySettings

METHODS = ("get", "put", "post", "patch", "delete", "options", "head")


# --- the documents under test ------------------------------------------------------


def platform_document() -> dict[str, Any]:
    """The `make run` gateway's one document (no service needs to run for it)."""
    return create_platform_app(definitions()).openapi()


def documents() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "platform", platform_document()
    for definition in definitions():
        yield definition.name, create_platform_app([definition]).openapi()


DOCUMENTS = dict(documents())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """`schema` (refs `#/components/...` of `document`) as JSON Schema 2020-12, OpenAPI 3.1's."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def error_schema(document: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    op = document["paths"][path][method.lower()]
    response = op["responses"][str(status)]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


# --- operationIds and schema names ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_operation_ids_are_unique_and_simple(name: str) -> None:
    document = DOCUMENTS[name]
    ids = [op.get("operationId") for _, _, op in operations(document)]
    assert ids, name
    assert all(isinstance(i, str) and re.fullmatch(OPERATION_ID, i) for i in ids), ids
    assert len(ids) == len(set(ids)), sorted(str(i) for i in ids if ids.count(i) > 1)
    for _, _, op in operations(document):
        assert op["operationId"].startswith(f"{op['tags'][0]}_"), op["operationId"]


def test_operation_ids_are_tag_and_function_name() -> None:
    document = DOCUMENTS["platform"]
    assert document["paths"]["/rooms/{room_id}/join"]["post"]["operationId"] == "rooms_join_room"
    assert document["paths"]["/schedule"]["post"]["operationId"] == "schedule_schedule_room"
    assert document["paths"]["/readyz"]["get"]["operationId"] == "operations_readyz"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_component_names_are_plain(name: str) -> None:
    schemas = DOCUMENTS[name]["components"]["schemas"]
    assert not [n for n in schemas if "__" in n or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", n)]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert {"Error", "ErrorInfo"} <= set(schemas)


def test_rooms_and_the_schedule_name_their_rooms_apart() -> None:
    schemas = DOCUMENTS["platform"]["components"]["schemas"]
    assert {"ScheduledRoomOut", "ActiveRoomOut"} <= set(schemas)
    assert "RoomOut" not in schemas


# --- one error schema ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_error_response_is_the_one_error_schema(name: str) -> None:
    document = DOCUMENTS[name]
    error = validator(document, {"$ref": ERROR_REF})
    seen = 0
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            seen += 1
            where = f"{method} {path} {status}"
            content = response["content"]
            assert list(content) == ["application/json"], where
            assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, where
            codes = response[CODES_KEY]
            assert codes, where
            assert len(codes) == len(set(codes)), where
            for code in codes:
                assert f"`{code}`" in response["description"], where
            examples = content["application/json"]["examples"]
            assert set(examples) == set(codes), where
            for code, example in examples.items():
                error.validate(example["value"])
                assert example["value"]["error"]["code"] == code
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"], where
    assert seen > 0


def test_what_the_edge_can_answer_is_documented() -> None:
    document = DOCUMENTS["platform"]
    for method, path, op in operations(document):
        responses = op["responses"]
        where = f"{method} {path}"
        if op.get("security"):
            assert "unauthorized" in responses["401"][CODES_KEY], where
            assert "token_expired" in responses["401"][CODES_KEY], where
            assert responses["429"][CODES_KEY] == ["rate_limited"], where
            assert "auth_unavailable" in responses["503"][CODES_KEY], where
        else:
            assert "401" not in responses, where
        body = op.get("requestBody", {}).get("content", {})
        if body:
            assert "payload_too_large" in responses["413"][CODES_KEY], where
        if "application/json" in body:
            assert "invalid_json" in responses["400"][CODES_KEY], where
            assert "validation_error" in responses["422"][CODES_KEY], where
    assert document["paths"]["/readyz"]["get"]["responses"]["503"][CODES_KEY] == ["not_ready"]


def test_routes_document_the_codes_they_raise() -> None:
    paths = DOCUMENTS["platform"]["paths"]

    def codes(method: str, path: str, status: int) -> list[str]:
        found: list[str] = paths[path][method]["responses"][str(status)][CODES_KEY]
        return found

    assert "room_full" in codes("post", "/rooms/{room_id}/join", 409)
    assert "chime_busy" in codes("post", "/rooms/{room_id}/join", 503)
    assert codes("get", "/rooms/{room_id}", 404) == ["room_not_found"]
    assert codes("get", "/schedule", 403) == ["forbidden"]
    assert "start_in_past" in codes("post", "/schedule", 422)
    assert "room_cancelled" in codes("delete", "/schedule/{room_id}", 409)
    assert "not_a_member" in codes("post", "/chat/channels/{channel_id}/messages", 403)
    assert "unsupported_media_type" in codes("post", "/chat/attachments", 415)
    assert codes("post", "/notifications/mentions/{mention_id}/read", 404) == ["mention_not_found"]


# --- request body examples -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_json_request_body_has_a_valid_example(name: str) -> None:
    document = DOCUMENTS[name]
    bodies = 0
    for method, path, op in operations(document):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            continue
        bodies += 1
        media = content["application/json"]
        assert "example" in media, f"{method} {path}"
        validator(document, media["schema"]).validate(media["example"])
    assert bodies > 0 or name in ("rooms", "notifier")


def test_a_broken_example_would_be_caught() -> None:
    document = DOCUMENTS["platform"]
    media = document["paths"]["/schedule"]["post"]["requestBody"]["content"]["application/json"]
    broken = {**media["example"], "duration_minutes": "an hour"}
    assert list(validator(document, media["schema"]).iter_errors(broken))


# --- the wire answers what the document says ------------------------------------------


class ThingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "a"}]})
    name: str = Field(min_length=1, max_length=10)


things = APIRouter(prefix="/things", tags=["things"])


@things.post("", status_code=201)
async def make_thing(body: ThingIn, me: CurrentUser) -> dict[str, str]:
    return {"name": body.name, "by": me.user_id}


@things.get("/{thing_id}", responses=errors({404: ["thing_not_found"]}))
async def get_thing(thing_id: str, me: CurrentUser) -> dict[str, str]:
    raise NotFound(f"no thing {thing_id}", code="thing_not_found")


@things.get("/{thing_id}/busy", responses=errors({503: ["service_unavailable"]}))
async def busy_thing(thing_id: str) -> dict[str, str]:
    raise PublishFailed("the broker is gone")


def app_with(**changes: Any) -> FastAPI:
    settings = BelfrySettings(http_max_body_bytes=100, **changes)
    app = create_app(title="t", service="t", routers=[things], settings=settings)
    app.state.settings = settings
    app.state.verifier = create_verifier(settings)
    return app


@pytest.fixture
async def wire() -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any], dict[str, str]]]:
    app = app_with()
    token = mint_local_token(app.state.settings, sub="u-1", groups=["customer"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://contract.test"
    ) as http:
        yield http, app.openapi(), {"Authorization": f"Bearer {token}"}


async def test_wire_errors_validate_against_the_documented_schema(
    wire: tuple[httpx.AsyncClient, dict[str, Any], dict[str, str]],
) -> None:
    http, document, bearer = wire
    raw = {**bearer, "Content-Type": "application/json"}
    cases: list[tuple[str, str, str, dict[str, str], dict[str, Any], int, str | None]] = [
        ("POST", "/things", "/things", {}, {"json": {"name": "a"}}, 401, "unauthorized"),
        ("POST", "/things", "/things", bearer, {"json": {"name": ""}}, 422, "validation_error"),
        ("POST", "/things", "/things", bearer, {"json": {"nom": "a"}}, 422, "validation_error"),
        ("POST", "/things", "/things", raw, {"content": b"{"}, 400, "invalid_json"),
        ("POST", "/things", "/things", raw, {"content": b"[" * 200}, 413, "payload_too_large"),
        ("GET", "/things/{thing_id}", "/things/t-1", bearer, {}, 404, "thing_not_found"),
        ("GET", "/things/{thing_id}", "/things/t-1", {"Authorization": "Bearer x"}, {}, 401, None),
        ("GET", "/things/{thing_id}/busy", "/things/t/busy", {}, {}, 503, "service_unavailable"),
    ]
    for method, template, path, headers, body, status, code in cases:
        response = await http.request(method, path, headers=headers, **body)
        where = f"{method} {path} -> {response.status_code} {response.text}"
        assert response.status_code == status, where
        op = document["paths"][template][method.lower()]
        documented = op["responses"][str(status)]
        validator(document, error_schema(document, method, template, status)).validate(
            response.json()
        )
        assert response.json()["error"]["code"] in documented[CODES_KEY], where
        if code is not None:
            assert response.json()["error"]["code"] == code, where


async def test_a_wire_error_that_breaks_the_schema_is_caught(
    wire: tuple[httpx.AsyncClient, dict[str, Any], dict[str, str]],
) -> None:
    _, document, _ = wire
    schema = error_schema(document, "GET", "/things/{thing_id}", 404)
    check = validator(document, schema)
    for broken in ({"detail": "Not Found"}, {"error": {"code": "x"}}, {"error": "x"}):
        assert list(check.iter_errors(broken)), broken


# --- Swagger UI and ReDoc, offline -----------------------------------------------------

_EXTERNAL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", re.IGNORECASE)
_REFERENCES = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""")


async def test_docs_and_redoc_are_served_from_the_app() -> None:
    app = app_with()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://docs.test"
    ) as http:
        for page in ("/docs", "/redoc"):
            response = await http.get(page)
            assert response.status_code == 200, page
            assert response.headers["content-type"].startswith("text/html")
            html = response.text
            assert not _EXTERNAL.findall(html), (page, _EXTERNAL.findall(html))
            references = _REFERENCES.findall(html)
            assert any(r.startswith(DOCS_ASSETS) and r.endswith(".js") for r in references)
            for reference in references:
                assert reference.startswith("/"), (page, reference)
                asset = await http.get(reference)
                assert asset.status_code == 200, (page, reference)
                assert asset.content, reference
            assert "/openapi.json" in html
        redirect = await http.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200
        assert not _EXTERNAL.findall(redirect.text)
        assert (await http.get(f"{DOCS_ASSETS}/no-such-file.js")).status_code == 404


async def test_docs_off_hides_the_pages_and_their_assets() -> None:
    app = app_with(http_docs=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://docs.test"
    ) as http:
        for path in ("/docs", "/redoc", "/openapi.json", f"{DOCS_ASSETS}/swagger-ui-bundle.js"):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"


# --- CORS, opt-in, in front of the edge -------------------------------------------------

ORIGIN = "https://app.example.com"


def preflight(method: str = "POST", headers: str = "authorization, content-type") -> dict[str, str]:
    return {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_cors_is_off_by_default() -> None:
    assert BelfrySettings().cors_origins == ()
    app = app_with()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://cors.test"
    ) as http:
        answer = await http.options("/things", headers=preflight())
        assert answer.status_code == 405
        assert "access-control-allow-origin" not in answer.headers
        refused = await http.post("/things", json={"name": "a"}, headers={"Origin": ORIGIN})
        assert refused.status_code == 401
        assert "access-control-allow-origin" not in refused.headers


async def test_cors_answers_preflights_before_the_edge_asks_for_a_bearer() -> None:
    app = app_with(cors_origins=f"{ORIGIN},http://localhost:5173")
    token = mint_local_token(app.state.settings, sub="u-1", groups=["customer"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://cors.test"
    ) as http:
        headers = "authorization, content-type, idempotency-key, x-correlation-id"
        answer = await http.options("/things", headers=preflight(headers=headers))
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        allowed = answer.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "idempotency-key", "x-correlation-id", "content-type"):
            assert header in allowed
        assert "PATCH" in answer.headers["access-control-allow-methods"]
        assert answer.headers["x-content-type-options"] == "nosniff"

        stranger = await http.options(
            "/things", headers={**preflight(), "Origin": "https://evil.example"}
        )
        assert stranger.status_code == 400
        assert "access-control-allow-origin" not in stranger.headers

        # The edge's own refusal reaches the browser: it carries the CORS headers.
        refused = await http.post("/things", json={"name": "a"}, headers={"Origin": ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ORIGIN
        exposed = refused.headers["access-control-expose-headers"].lower()
        assert "x-correlation-id" in exposed
        assert "retry-after" in exposed

        made = await http.post(
            "/things",
            json={"name": "a"},
            headers={"Origin": ORIGIN, "Authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.text
        assert made.headers["access-control-allow-origin"] == ORIGIN

        # A dependency that is down is answered inside the middleware: CORS and the id.
        busy = await http.get("/things/t/busy", headers={"Origin": ORIGIN})
        assert busy.status_code == 503
        assert busy.headers["access-control-allow-origin"] == ORIGIN
        assert busy.headers["retry-after"] == "1"
        assert busy.headers["x-correlation-id"]


def test_cors_origins_setting() -> None:
    parsed = BelfrySettings(cors_origins=" https://a.example/ ,http://localhost:5173,")
    assert parsed.cors_origins == ("https://a.example", "http://localhost:5173")
    again = BelfrySettings.model_validate(
        {"cors_origins": parsed.environment()["BELFRY_CORS_ORIGINS"]}
    )
    assert again.cors_origins == parsed.cors_origins
    for bad in ("*", "app.example.com", "https://a.example/path", "ftp://a.example"):
        with pytest.raises(ValueError, match="BELFRY_CORS_ORIGINS"):
            BelfrySettings(cors_origins=bad)


def test_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BELFRY_CORS_ORIGINS", "https://a.example,https://b.example")
    assert BelfrySettings().cors_origins == ("https://a.example", "https://b.example")
