"""shared.auth: local and Cognito token verification, JWKS caching, FastAPI dependencies, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from jwt.algorithms import RSAAlgorithm

from shared.auth import (
    AdminUser,
    CognitoTokenVerifier,
    CurrentUser,
    LocalTokenVerifier,
    Principal,
    StaffUser,
    auth_config,
    authenticate_websocket,
    bearer_token,
    create_verifier,
    mint_local_token,
    require_groups,
)
from shared.auth.__main__ import main as cli_main
from shared.auth.jwks import parse_jwks
from shared.errors import BelfryError, ServiceUnavailable, Unauthorized
from shared.settings import BelfrySettings

SECRET = "unit-test-secret-" + "0123456789abcdef" * 4  # long enough for HS512 too
ISSUER = "belfry-local"
CLIENT = "belfry-local"
REGION = "eu-west-1"
POOL = "eu-west-1_AbCdEf123"
COGNITO_ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL}"
COGNITO_CLIENT = "app-client-1"
REPO = Path(__file__).resolve().parents[2]


def local_settings(**overrides: Any) -> BelfrySettings:
    values: dict[str, Any] = {
        "auth_mode": "local",
        "auth_local_secret": SECRET,
        "auth_local_issuer": ISSUER,
        "auth_local_client_id": CLIENT,
        **overrides,
    }
    return BelfrySettings(**values)


def access_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "u-alice",
        "iss": ISSUER,
        "client_id": CLIENT,
        "token_use": "access",
        "iat": now,
        "exp": now + 600,
        "username": "alice",
        "cognito:groups": ["manager"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture
def verifier() -> LocalTokenVerifier:
    return LocalTokenVerifier(SECRET, ISSUER, CLIENT)


# --- Principal -----------------------------------------------------------------


def test_principal_group_helpers() -> None:
    p = Principal(user_id="u1", groups=frozenset({"manager", "customer"}))
    assert (p.is_admin, p.is_manager, p.is_customer) == (False, True, True)
    assert p.has_any("admin", "manager")
    assert not p.has_any("admin")
    assert not p.has_any()
    assert hash(Principal(user_id="u1", claims={"a": [1]})) == hash(Principal(user_id="u1"))


# --- local tokens ----------------------------------------------------------------


async def test_minted_local_token_round_trips(verifier: LocalTokenVerifier) -> None:
    token = mint_local_token(local_settings(), "u-bob", ["admin", "manager"], username="bob")
    principal = await verifier.verify(token)
    assert principal.user_id == "u-bob"
    assert principal.username == "bob"
    assert principal.groups == frozenset({"admin", "manager"})
    assert (principal.is_admin, principal.is_manager, principal.is_customer) == (True, True, False)
    assert principal.claims["token_use"] == "access"
    assert principal.claims["client_id"] == CLIENT
    assert principal.claims["exp"] - principal.claims["iat"] == 3600


async def test_token_without_groups_has_none(verifier: LocalTokenVerifier) -> None:
    token = mint_local_token(local_settings(), "u-carol", [])
    principal = await verifier.verify(token)
    assert principal.groups == frozenset()
    assert principal.username == "u-carol"
    assert "cognito:groups" not in principal.claims


def test_mint_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown group"):
        mint_local_token(local_settings(), "u1", ["admni"])
    with pytest.raises(ValueError, match="sub"):
        mint_local_token(local_settings(), "", ["admin"])
    with pytest.raises(ValueError, match="ttl"):
        mint_local_token(local_settings(), "u1", [], ttl_seconds=0)


def _alg_none_token() -> str:
    return jwt.encode(access_claims(), "", algorithm="none")


@pytest.mark.parametrize(
    ("make_token", "message", "code"),
    [
        pytest.param(
            lambda: hs256(access_claims(exp=int(time.time()) - 3600)),
            "expired",
            "token_expired",
            id="expired",
        ),
        pytest.param(
            lambda: hs256(access_claims(), secret="another-secret-of-at-least-thirty-two-bytes"),
            "signature",
            "invalid_token",
            id="forged",
        ),
        pytest.param(
            lambda: hs256(access_claims(iss="evil")), "issuer", "invalid_token", id="wrong-iss"
        ),
        pytest.param(
            lambda: hs256(access_claims(token_use="id", aud=CLIENT)),
            "not an access token",
            "invalid_token",
            id="id-token",
        ),
        pytest.param(
            lambda: hs256(access_claims(client_id="other-client")),
            "another client",
            "invalid_token",
            id="wrong-client",
        ),
        pytest.param(_alg_none_token, "algorithm", "invalid_token", id="alg-none"),
        pytest.param(
            lambda: jwt.encode(access_claims(), SECRET, algorithm="HS512"),
            "algorithm",
            "invalid_token",
            id="other-alg",
        ),
        pytest.param(lambda: "not-a-jwt", "malformed", "invalid_token", id="garbage"),
        pytest.param(lambda: "a.b.c", "malformed", "invalid_token", id="three-garbage-segments"),
        pytest.param(lambda: "", "malformed", "invalid_token", id="empty"),
        pytest.param(lambda: hs256(access_claims(sub=None)), "'sub'", "invalid_token", id="no-sub"),
        pytest.param(lambda: hs256(access_claims(exp=None)), "'exp'", "invalid_token", id="no-exp"),
        pytest.param(
            lambda: hs256(access_claims(iat=int(time.time()) + 3600)),
            "not yet valid",
            "invalid_token",
            id="issued-in-future",
        ),
        pytest.param(
            lambda: hs256(access_claims(**{"cognito:groups": "admin"})),
            "groups",
            "invalid_token",
            id="groups-not-a-list",
        ),
    ],
)
async def test_local_verifier_rejects(
    verifier: LocalTokenVerifier, make_token: Callable[[], str], message: str, code: str
) -> None:
    # Made when the test runs, not when it is collected: a token of the suite's start
    # would have expired by the time a long run gets here.
    with pytest.raises(Unauthorized, match=message) as caught:
        await verifier.verify(make_token())
    assert caught.value.error_code == code
    challenge = caught.value.headers["WWW-Authenticate"]
    assert challenge == f'Bearer error="invalid_token", error_description="{caught.value.message}"'


async def test_exp_leeway_is_small(verifier: LocalTokenVerifier) -> None:
    just_expired = hs256(access_claims(exp=int(time.time()) - 5))
    assert (await verifier.verify(just_expired)).user_id == "u-alice"
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.verify(hs256(access_claims(exp=int(time.time()) - 120)))


# --- Cognito: keys, JWKS served over HTTP ---------------------------------------


class KeyPair:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, **overrides: Any) -> str:
        claims = access_claims(**{"iss": COGNITO_ISSUER, "client_id": COGNITO_CLIENT, **overrides})
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def keys() -> tuple[KeyPair, KeyPair, KeyPair]:
    return KeyPair("kid-1"), KeyPair("kid-2"), KeyPair("kid-1")  # the last one: a forger's


class JwksServer:
    """A real HTTP server in a thread that serves a mutable JWKS and counts requests."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.requests += 1
                    body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/{POOL}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeJwksEndpoint:
    """httpx.MockTransport handler: a JWKS that a test can change, block, or break."""

    def __init__(self, *pairs: KeyPair) -> None:
        self.document: dict[str, Any] = {"keys": [p.jwk() for p in pairs]}
        self.calls = 0
        self.status = 200
        self.entered = asyncio.Event()
        self.release: asyncio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.entered.set()
        if self.release is not None:
            await self.release.wait()
        if self.status != 200:
            return httpx.Response(self.status, text="boom")
        return httpx.Response(200, json=self.document)


def mocked_verifier(
    endpoint: FakeJwksEndpoint, clock: FakeClock, min_refetch: float = 60.0
) -> CognitoTokenVerifier:
    client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    return CognitoTokenVerifier(
        REGION,
        POOL,
        [COGNITO_CLIENT],
        jwks_url="https://jwks.test/jwks.json",
        min_refetch_seconds=min_refetch,
        http_client=client,
        clock=clock,
    )


async def test_cognito_over_real_http_caches_the_key_set(
    jwks_server: JwksServer, keys: tuple[KeyPair, KeyPair, KeyPair]
) -> None:
    key1, _, forger = keys
    jwks_server.document = {"keys": [key1.jwk()]}
    verifier = CognitoTokenVerifier(REGION, POOL, [COGNITO_CLIENT], jwks_url=jwks_server.url)
    for _ in range(25):
        principal = await verifier.verify(key1.sign(sub="u-dave", username="dave"))
        assert principal.user_id == "u-dave"
        assert principal.username == "dave"
        assert principal.groups == frozenset({"manager"})
    assert jwks_server.requests == 1

    rejected = {
        "signature": forger.sign(),  # same kid, another private key
        "issuer": key1.sign(iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"),
        "another client": key1.sign(client_id="someone-elses-app"),
        "not an access token": key1.sign(token_use="id", aud=COGNITO_CLIENT),
        "expired": key1.sign(exp=int(time.time()) - 3600),
    }
    for message, token in rejected.items():
        with pytest.raises(Unauthorized, match=message):
            await verifier.verify(token)
    assert jwks_server.requests == 1


async def test_cognito_refuses_other_algorithms_without_fetching(
    keys: tuple[KeyPair, KeyPair, KeyPair],
) -> None:
    key1 = keys[0]
    endpoint, clock = FakeJwksEndpoint(key1), FakeClock()
    verifier = mocked_verifier(endpoint, clock)
    public_pem = key1.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = access_claims(iss=COGNITO_ISSUER, client_id=COGNITO_CLIENT)
    # The classic key confusion: HS256 "signed" with the public key (PyJWT refuses to
    # make one, so it is put together by hand).
    confused = _hmac_token_with_key(claims, public_pem, key1.kid)
    for token in (confused, _alg_none_token(), "garbage"):
        with pytest.raises(Unauthorized):
            await verifier.verify(token)
    with pytest.raises(Unauthorized, match="key id"):
        await verifier.verify(jwt.encode(claims, key1.private, algorithm="RS256"))
    assert endpoint.calls == 0


def _hmac_token_with_key(claims: dict[str, Any], key: bytes, kid: str) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


async def test_key_rotation_refetches_once(keys: tuple[KeyPair, KeyPair, KeyPair]) -> None:
    key1, key2, _ = keys
    endpoint, clock = FakeJwksEndpoint(key1), FakeClock()
    verifier = mocked_verifier(endpoint, clock)
    await verifier.verify(key1.sign())
    assert endpoint.calls == 1

    endpoint.document = {"keys": [key1.jwk(), key2.jwk()]}  # the pool publishes a new key
    clock.now += 61
    for _ in range(10):
        assert (await verifier.verify(key2.sign())).user_id == "u-alice"
        assert (await verifier.verify(key1.sign())).user_id == "u-alice"
    assert endpoint.calls == 2


async def test_unknown_kids_refetch_at_most_once_per_window(
    keys: tuple[KeyPair, KeyPair, KeyPair],
) -> None:
    key1, key2, _ = keys
    endpoint, clock = FakeJwksEndpoint(key1), FakeClock()
    verifier = mocked_verifier(endpoint, clock, min_refetch=60)
    await verifier.verify(key1.sign())

    flood = [
        jwt.encode(access_claims(), key2.private, algorithm="RS256", headers={"kid": f"x-{i}"})
        for i in range(50)
    ]
    clock.now += 30  # inside the window: no fetch at all
    for token in flood:
        with pytest.raises(Unauthorized, match="unknown key"):
            await verifier.verify(token)
    assert endpoint.calls == 1

    clock.now += 31  # window over: the first unknown kid fetches once, the rest do not
    for token in flood:
        with pytest.raises(Unauthorized, match="unknown key"):
            await verifier.verify(token)
    assert endpoint.calls == 2
    assert (await verifier.verify(key1.sign())).user_id == "u-alice"
    assert endpoint.calls == 2


async def test_concurrent_unknown_kid_shares_one_fetch(
    keys: tuple[KeyPair, KeyPair, KeyPair],
) -> None:
    key1, key2, _ = keys
    endpoint, clock = FakeJwksEndpoint(key1, key2), FakeClock()
    endpoint.release = asyncio.Event()
    verifier = mocked_verifier(endpoint, clock)
    good = [asyncio.create_task(verifier.verify(key2.sign(sub=f"u-{i}"))) for i in range(20)]
    unknown = [
        asyncio.create_task(
            verifier.verify(
                jwt.encode(access_claims(), key2.private, algorithm="RS256", headers={"kid": "zz"})
            )
        )
        for _ in range(5)
    ]
    async with asyncio.timeout(5):
        await endpoint.entered.wait()
    endpoint.release.set()
    principals = await asyncio.gather(*good)
    assert sorted(p.user_id for p in principals) == sorted(f"u-{i}" for i in range(20))
    for outcome in await asyncio.gather(*unknown, return_exceptions=True):
        assert isinstance(outcome, Unauthorized)
    assert endpoint.calls == 1


async def test_failed_fetch_is_unavailable_then_retried(
    keys: tuple[KeyPair, KeyPair, KeyPair],
) -> None:
    key1 = keys[0]
    endpoint, clock = FakeJwksEndpoint(key1), FakeClock()
    endpoint.status = 500
    verifier = mocked_verifier(endpoint, clock)
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(key1.sign())
    with pytest.raises(ServiceUnavailable):  # backing off: no second fetch yet
        await verifier.verify(key1.sign())
    assert endpoint.calls == 1

    endpoint.status = 200
    clock.now += 5
    assert (await verifier.verify(key1.sign())).user_id == "u-alice"
    assert endpoint.calls == 2


def test_parse_jwks_keeps_only_rsa_signing_keys(keys: tuple[KeyPair, KeyPair, KeyPair]) -> None:
    key1, key2, _ = keys
    document = {
        "keys": [
            key1.jwk(),
            {**key2.jwk(), "use": "enc"},
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {**key2.jwk(), "kid": "rs512", "alg": "RS512"},
            {"kty": "RSA", "kid": "broken", "n": "!", "e": "AQAB"},
            "junk",
        ]
    }
    assert set(parse_jwks(document)) == {"kid-1"}
    with pytest.raises(ValueError, match="keys"):
        parse_jwks({"nope": []})
    with pytest.raises(ValueError, match="usable"):
        parse_jwks({"keys": [{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}]})


# --- create_verifier --------------------------------------------------------------


async def test_create_verifier_local() -> None:
    verifier = create_verifier(local_settings())
    assert isinstance(verifier, LocalTokenVerifier)
    principal = await verifier.verify(mint_local_token(local_settings(), "u1", ["customer"]))
    assert principal.is_customer


def test_create_verifier_cognito() -> None:
    settings = BelfrySettings(
        auth_mode="cognito", cognito_user_pool_id=POOL, cognito_client_ids=("a", "b")
    )
    verifier = create_verifier(settings)
    assert isinstance(verifier, CognitoTokenVerifier)
    assert verifier.issuer == COGNITO_ISSUER  # region taken from the pool id
    assert verifier.jwks.url == f"{COGNITO_ISSUER}/.well-known/jwks.json"
    assert verifier.client_ids == frozenset({"a", "b"})
    with pytest.raises(ValueError, match="POOL_ID"):
        create_verifier(BelfrySettings(auth_mode="cognito", cognito_client_ids=("a",)))
    with pytest.raises(ValueError, match="client id"):
        create_verifier(BelfrySettings(auth_mode="cognito", cognito_user_pool_id=POOL))


def test_create_verifier_cognito_with_a_jwks_url_and_region() -> None:
    settings = BelfrySettings(
        auth_mode="cognito",
        cognito_region="us-east-1",
        cognito_user_pool_id="us-east-1_Local",
        cognito_client_ids=("console",),
        cognito_jwks_url="http://127.0.0.1:4566/us-east-1_Local/.well-known/jwks.json",
    )
    verifier = create_verifier(settings)
    assert isinstance(verifier, CognitoTokenVerifier)
    assert verifier.issuer == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Local"
    assert verifier.jwks.url == settings.cognito_jwks_url


def test_auth_config_is_what_a_browser_needs() -> None:
    assert auth_config(local_settings()).model_dump(exclude_none=True) == {"mode": "local"}
    aws = BelfrySettings(
        auth_mode="cognito", cognito_user_pool_id=POOL, cognito_client_ids=("web", "cli")
    )
    assert auth_config(aws).model_dump(exclude_none=True) == {
        "mode": "cognito",
        "region": REGION,  # from the pool id
        "user_pool_id": POOL,
        "client_id": "web",  # the first app client: the browser's
        "endpoint": f"https://cognito-idp.{REGION}.amazonaws.com/",
    }
    local_pool = aws.model_copy(
        update={"cognito_region": "us-east-1", "cognito_endpoint_url": "http://127.0.0.1:4566"}
    )
    shown = auth_config(local_pool)
    assert (shown.region, shown.endpoint) == ("us-east-1", "http://127.0.0.1:4566")
    assert "secret" not in json.dumps(shown.model_dump()).lower()


# --- FastAPI ------------------------------------------------------------------------


def make_app() -> FastAPI:
    app = FastAPI()
    app.state.verifier = LocalTokenVerifier(SECRET, ISSUER, CLIENT)

    @app.exception_handler(BelfryError)
    async def belfry_error(request: Request, exc: BelfryError) -> JSONResponse:
        body = {"error": {"code": exc.error_code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        bound = structlog.contextvars.get_contextvars().get("user_id")
        return {"user_id": user.user_id, "groups": sorted(user.groups), "bound": bound}

    @app.get("/admin")
    async def admin(user: AdminUser) -> dict[str, str]:
        return {"user_id": user.user_id}

    @app.get("/staff")
    async def staff(user: StaffUser) -> dict[str, str]:
        return {"user_id": user.user_id}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        try:
            principal = await authenticate_websocket(websocket, timeout_seconds=0.2)
        except Unauthorized as exc:
            await websocket.close(code=4401, reason=exc.message)
            return
        if websocket.client_state.name == "CONNECTING":
            await websocket.accept()
        await websocket.send_json({"user_id": principal.user_id})
        await websocket.close()

    return app


def token_for(sub: str, *groups: str) -> str:
    return mint_local_token(local_settings(), sub, groups)


@pytest.fixture
async def client() -> Any:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c
    # ASGITransport runs the app in the caller's context; keep user_id out of other tests.
    structlog.contextvars.clear_contextvars()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_current_user_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=bearer(token_for("u-erin", "customer")))
    assert response.status_code == 200
    assert response.json() == {"user_id": "u-erin", "groups": ["customer"], "bound": "u-erin"}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthorized"),
        ({"Authorization": "Basic dTpw"}, "unauthorized"),
        ({"Authorization": "Bearer"}, "unauthorized"),
        ({"Authorization": "Bearer not-a-jwt"}, "invalid_token"),
        (
            {"Authorization": f"Bearer {hs256(access_claims(exp=int(time.time()) - 3600))}"},
            "token_expired",
        ),
    ],
)
async def test_current_user_refuses(
    client: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_group_dependencies(client: httpx.AsyncClient) -> None:
    customer, manager, admin = (
        token_for("c", "customer"),
        token_for("m", "manager"),
        token_for("a", "admin"),
    )
    forbidden = await client.get("/admin", headers=bearer(customer))
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == {
        "code": "forbidden",
        "message": "this requires one of the groups: admin",
    }
    assert (await client.get("/admin", headers=bearer(manager))).status_code == 403
    assert (await client.get("/admin", headers=bearer(admin))).json() == {"user_id": "a"}
    assert (await client.get("/staff", headers=bearer(manager))).status_code == 200
    assert (await client.get("/staff", headers=bearer(customer))).status_code == 403
    assert (await client.get("/admin")).status_code == 401


async def test_openapi_declares_bearer_security(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert document["paths"]["/admin"]["get"]["security"] == [{"HTTPBearer": []}]


def test_require_groups_needs_a_group() -> None:
    with pytest.raises(ValueError, match="at least one"):
        require_groups()


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in (None, "", "abc", "Token abc", "Bearer a b"):
        with pytest.raises(Unauthorized):
            bearer_token(bad)


class WebSocketSession:
    """Drives one WebSocket through the ASGI app in this event loop (no threads, no server)."""

    def __init__(self, app: FastAPI, query: str = "") -> None:
        self.app = app
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/ws",
            "raw_path": b"/ws",
            "query_string": query.encode(),
            "headers": [],
            "subprotocols": [],
            "client": ("127.0.0.1", 1234),
            "server": ("t", 80),
        }
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[MutableMapping[str, Any]] = []
        self.inbound.put_nowait({"type": "websocket.connect"})

    def send_json(self, frame: Any) -> None:
        self.inbound.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})

    async def run(self) -> list[str]:
        """Run the app to its end; the types of the messages it sent ("accept", ...)."""

        async def send(message: MutableMapping[str, Any]) -> None:
            self.sent.append(message)

        async with asyncio.timeout(5):
            await self.app(self.scope, self.inbound.get, send)
        return [m["type"].removeprefix("websocket.") for m in self.sent]

    def close_code(self) -> int:
        closes = [m for m in self.sent if m["type"] == "websocket.close"]
        assert len(closes) == 1
        return int(closes[0]["code"])

    def json_frames(self) -> list[Any]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]


async def test_websocket_token_in_query() -> None:
    session = WebSocketSession(make_app(), query=f"since=5&token={token_for('u-q')}")
    assert await session.run() == ["accept", "send", "close"]
    assert session.json_frames() == [{"user_id": "u-q"}]


async def test_websocket_token_in_first_frame() -> None:
    session = WebSocketSession(make_app())
    session.send_json({"type": "auth", "token": token_for("u-f", "manager")})
    assert await session.run() == ["accept", "send", "close"]
    assert session.json_frames() == [{"user_id": "u-f"}]


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "auth", "token": "forged.token.here"},
        {"type": "hello", "token": "x"},
        {"type": "auth"},
        "not an object",
        None,  # no frame at all: the timeout
    ],
)
async def test_websocket_refused(frame: Any) -> None:
    session = WebSocketSession(make_app())
    if frame is not None:
        session.send_json(frame)
    assert await session.run() == ["accept", "close"]
    assert session.close_code() == 4401


async def test_websocket_bad_query_token_refused_before_accept() -> None:
    session = WebSocketSession(make_app(), query="token=nope")
    assert await session.run() == ["close"]
    assert session.close_code() == 4401


async def test_websocket_client_leaving_before_auth_frame() -> None:
    app = make_app()
    seen: list[BaseException] = []

    @app.websocket("/ws-leave")
    async def leave(websocket: WebSocket) -> None:
        try:
            await authenticate_websocket(websocket)
        except BaseException as exc:
            seen.append(exc)

    session = WebSocketSession(app)
    session.scope["path"] = "/ws-leave"
    session.inbound.put_nowait({"type": "websocket.disconnect", "code": 1001})
    await session.run()
    assert [type(e).__name__ for e in seen] == ["WebSocketDisconnect"]


# --- CLI ------------------------------------------------------------------------------


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BELFRY_")}
    environ.update(BELFRY_AUTH_LOCAL_SECRET=SECRET, **env)
    return subprocess.run(
        [sys.executable, "-m", "shared.auth", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=REPO,
        timeout=30,
        check=False,
    )


async def test_cli_prints_a_token_the_local_verifier_accepts() -> None:
    result = run_cli("token", "--sub", "alice", "--groups", "admin,manager", "--ttl", "120")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    principal = await LocalTokenVerifier(SECRET, ISSUER, CLIENT).verify(token)
    assert principal.user_id == "alice"
    assert principal.groups == frozenset({"admin", "manager"})
    assert principal.claims["exp"] - principal.claims["iat"] == 120
    with pytest.raises(Unauthorized, match="signature"):
        await LocalTokenVerifier("some-other-secret-32-bytes-long-xx", ISSUER, CLIENT).verify(token)


def test_cli_refuses_an_empty_sub() -> None:
    # What `make token GROUPS=admin` (SUB unset) runs.
    result = run_cli("token", "--sub", "", "--groups", "admin")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "SUB is empty" in result.stderr


def test_cli_accepts_empty_groups(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    monkeypatch.setenv("BELFRY_AUTH_LOCAL_SECRET", SECRET)
    assert cli_main(["token", "--sub", "bob", "--groups", ""]) == 0
    token = capsys.readouterr().out.strip()
    assert "cognito:groups" not in jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["token", "--sub", "  ", "--groups", ""], {}, "SUB is empty"),
        (["token", "--sub", "x", "--groups", "admin,admni"], {}, "unknown group"),
        (["token", "--sub", "x", "--ttl", "0"], {}, "ttl"),
        (["token", "--sub", "x"], {"BELFRY_AUTH_MODE": "cognito"}, "local mode"),
    ],
)
def test_cli_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: Any,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli_main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
