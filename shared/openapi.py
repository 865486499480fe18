"""The HTTP contract frontend teams generate clients from (docs/http.md).

Every Belfry app's OpenAPI document is made by FastAPI and then shaped here,
once, when first asked for (`install_contract`):

- operationIds are `<tag>_<function name>` (`rooms_join_room`): stable,
  unique across the gateway's one document, valid identifiers in any language;
- every 4xx/5xx response of every operation is the one `Error` schema
  (`{"error": {"code", "message", "details"?}}`, what `shared.errors.error_body`
  writes), its description and examples naming the codes it can carry: the
  ones the route declares (`errors({404: ["room_not_found"]})`) and the ones
  the edge and the app factory add to every route of a kind (401 and 429 for a
  route that needs a bearer, 400 `invalid_json` and 413 for one with a JSON
  body, 422 `validation_error` for one with parameters or a body);
- FastAPI's own `HTTPValidationError` is gone: a 422 is an `Error` on the wire;
- a JSON request body whose schema has `examples` shows the first one as the
  media type's `example` (Swagger UI's "Try it out").

`/docs` (Swagger UI) and `/redoc` (ReDoc) are served from the assets the
`fastapi-offline` package ships, under `/docs/assets/`: no CDN, no fonts from
elsewhere, so they work offline and under a strict network policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cache
from http import HTTPStatus
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.staticfiles import StaticFiles

from shared.errors import status_code_name

ERROR_REF = "#/components/schemas/Error"
CODES_KEY = "x-error-codes"
DOCS_ASSETS = "/docs/assets"
OPERATION_ID = r"^[a-z][a-z0-9_]*$"

# What every route of a kind can answer before (or besides) its own code runs.
AUTH_CODES = ("unauthorized", "invalid_token", "token_expired", "token_revoked")
RATE_LIMIT_CODES = ("rate_limited",)
# a verifier that cannot ask the user pool; any dependency down (DynamoDB, the broker)
AUTH_UNAVAILABLE_CODES = ("auth_unavailable", "service_unavailable")
BODY_TOO_LARGE_CODES = ("payload_too_large",)
BAD_JSON_CODES = ("invalid_json",)
VALIDATION_CODES = ("validation_error",)

_MESSAGES = {
    "unauthorized": "missing or malformed Authorization header",
    "invalid_token": "token is invalid",
    "token_expired": "token has expired",
    "token_revoked": "token was revoked or signed out",
    "auth_unavailable": "the user pool cannot be asked, try again",
    "rate_limited": "too many requests to POST /schedule; retry in 1 s",
    "payload_too_large": "the request body exceeds 65536 bytes",
    "invalid_json": "the request body is not valid JSON",
    "validation_error": "body.title: Field required",
    "service_unavailable": "a dependency is unavailable, try again",
    "not_ready": "a dependency is not ready",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


class ErrorInfo(BaseModel):
    """What went wrong: `code` for programs, `message` for people."""

    model_config = ConfigDict(title="ErrorInfo")

    code: str = Field(
        description="Machine-readable, snake_case; each operation lists the codes it answers.",
        examples=["room_not_found"],
    )
    message: str = Field(description="For people; its wording may change.")
    details: Any = Field(
        None,
        description="More about some codes (which field, which attachments, which checks).",
    )


class Error(BaseModel):
    """Every error answer of every Belfry API: `{"error": {"code", "message", "details"?}}`."""

    model_config = ConfigDict(title="Error")

    error: ErrorInfo


ErrorCodes = Mapping[int, Iterable[str]]


def errors(codes: ErrorCodes) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the error codes it answers, by status, besides the
    ones the edge adds (auth, rate limit, body, validation):
    `responses=errors({404: ["room_not_found"], 409: ["room_full"]})`."""
    return {
        status: {"description": HTTPStatus(status).phrase, CODES_KEY: list(dict.fromkeys(names))}
        for status, names in codes.items()
    }


def operation_id(route: APIRoute) -> str:
    """`<first tag>_<function name>`: `schedule_schedule_room`, `rooms_join_room`."""
    name = route.name
    if route.tags:
        tag = str(route.tags[0]).lower().replace("-", "_").replace(" ", "_")
        name = f"{tag}_{name}"
    return name


def install_contract(app: FastAPI) -> None:
    """Make `app.openapi()` return the shaped document (the edge reads it too)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = shape(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def shape(document: dict[str, Any]) -> dict[str, Any]:
    """The document with one `Error` schema on every error response (see the module)."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_error_schemas())
    for item in document.get("paths", {}).values():
        for op in item.values():
            if isinstance(op, dict) and "responses" in op:
                _shape_operation(op, schemas)
    return document


@cache
def _error_schemas() -> dict[str, Any]:
    schema = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "Error": schema}


def _shape_operation(op: dict[str, Any], schemas: dict[str, Any]) -> None:
    responses: dict[str, Any] = op["responses"]
    codes: dict[int, list[str]] = {}

    def add(status: int, names: Iterable[str]) -> None:
        codes.setdefault(status, [])
        codes[status].extend(n for n in names if n not in codes[status])

    body = op.get("requestBody", {}).get("content", {})
    json_body = any(_is_json(media) for media in body)
    if op.get("security"):
        add(401, AUTH_CODES)
        add(429, RATE_LIMIT_CODES)
        add(503, AUTH_UNAVAILABLE_CODES)
    if json_body:
        add(400, BAD_JSON_CODES)
    if body:
        add(413, BODY_TOO_LARGE_CODES)
    if "422" in responses or json_body or op.get("parameters"):
        add(422, VALIDATION_CODES)
    for key, response in responses.items():
        if key.isdigit() and int(key) >= 400:
            add(int(key), response.get(CODES_KEY) or ())
    for status in sorted(codes):
        names = codes[status] or [status_code_name(status)]
        responses[str(status)] = _error_response(status, names, responses.get(str(status), {}))
    op["responses"] = dict(sorted(responses.items()))
    for media, content in body.items():
        if _is_json(media) and "example" not in content and "examples" not in content:
            example = _example(content.get("schema", {}), schemas)
            if example is not None:
                content["example"] = example


def _error_response(status: int, names: list[str], declared: dict[str, Any]) -> dict[str, Any]:
    listed = ", ".join(f"`{n}`" for n in names)
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: {listed}",
        CODES_KEY: names,
        "content": {
            "application/json": {
                "schema": {"$ref": ERROR_REF},
                "examples": {
                    name: {"value": {"error": {"code": name, "message": _message(name)}}}
                    for name in names
                },
            }
        },
    }
    headers = dict(declared.get("headers", {}))
    if status in (429, 503):
        headers.update(_RETRY_AFTER)
    if headers:
        response["headers"] = headers
    return response


def _message(code: str) -> str:
    return _MESSAGES.get(code, code.replace("_", " "))


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _example(schema: dict[str, Any], schemas: Mapping[str, Any]) -> Any:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        schema = schemas.get(ref.rsplit("/", 1)[-1], {})
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    return None


# --- /docs and /redoc, offline ---------------------------------------------------------


def assets_dir() -> Path:
    """Swagger UI's and ReDoc's files as the `fastapi-offline` package ships them."""
    spec = find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fastapi-offline is not installed: it ships /docs' assets")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


SWAGGER_UI_PARAMETERS = {
    "validatorUrl": None,  # no badge fetched from validator.swagger.io
    "persistAuthorization": True,
    "displayOperationId": True,
}


def mount_docs(app: FastAPI) -> None:
    """`/docs`, `/docs/oauth2-redirect` and `/redoc`, their assets under `/docs/assets/`
    (the edge answers 404 for all of them when `BELFRY_HTTP_DOCS=false`)."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=base + openapi_url,
            title=f"{app.title}: Swagger UI",
            swagger_js_url=f"{base}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{base}{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=f"{base}/docs/oauth2-redirect",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=base + openapi_url,
            title=f"{app.title}: ReDoc",
            redoc_js_url=f"{base}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/docs/oauth2-redirect", oauth2_redirect, methods=["GET"], include_in_schema=False
    )
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
