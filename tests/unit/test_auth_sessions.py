"""shared.auth: `sub` validation, the revocation check (cache, shared calls,
outages), sessions that end with their token, and logs without secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import pytest

from shared.auth import LocalTokenVerifier, Principal, RevocationChecker, SessionAuth, valid_sub
from shared.auth.claims import principal_from_claims
from shared.auth.local import mint_local_token
from shared.errors import ServiceUnavailable, Unauthorized
from shared.logging import REDACTED, configure_logging, get_logger, redact
from shared.settings import BelfrySettings

SECRET = "unit-test-secret-" + "0123456789abcdef" * 4
SETTINGS = BelfrySettings(auth_local_secret=SECRET)
ENDPOINT = "http://cognito.test/"


def claims(sub: Any) -> dict[str, Any]:
    return {"sub": sub, "token_use": "access", "client_id": "c", "exp": time.time() + 60}


# --- sub ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sub",
    ["u-alice", "9d5c0b2a-1234-4abc-8def-0123456789ab", "a.b_c@d:e+f", "x" * 128, "7"],
)
def test_good_subjects_are_accepted(sub: str) -> None:
    assert valid_sub(sub)
    assert principal_from_claims(claims(sub), client_ids={"c"}).user_id == sub


@pytest.mark.parametrize(
    "sub",
    ["", "x" * 129, "user#1", "a/b", "a b", "tab\there", "new\nline", "é", "a\x00", 42, None],
)
def test_bad_subjects_are_refused_as_invalid_tokens(sub: Any) -> None:
    assert not valid_sub(sub)
    with pytest.raises(Unauthorized) as refused:
        principal_from_claims(claims(sub), client_ids={"c"})
    assert refused.value.error_code == "invalid_token"
    assert refused.value.message == "token subject is malformed"


async def test_a_signed_token_with_a_bad_subject_is_refused() -> None:
    import jwt

    now = int(time.time())
    token = jwt.encode(
        {
            "sub": "../../etc",
            "iss": "belfry-local",
            "client_id": "belfry-local",
            "token_use": "access",
            "iat": now,
            "exp": now + 60,
        },
        SECRET,
        algorithm="HS256",
    )
    verifier = LocalTokenVerifier(SECRET, "belfry-local", "belfry-local")
    with pytest.raises(Unauthorized) as refused:
        await verifier.verify(token)
    assert refused.value.error_code == "invalid_token"


# --- revocation ---------------------------------------------------------------------


class Pool:
    """A stand-in for Cognito's GetUser: who is revoked, how it answers, who asked."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.calls: list[str] = []
        self.status = 200
        self.delay = 0.0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["x-amz-target"] == "AWSCognitoIdentityProviderService.GetUser"
        token = json.loads(request.content)["AccessToken"]
        self.calls.append(token)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return httpx.Response(self.status, json={"__type": "InternalErrorException"})
        if token in self.revoked:
            return httpx.Response(
                400, json={"__type": "NotAuthorizedException", "message": "revoked"}
            )
        return httpx.Response(200, json={"Username": "u", "UserAttributes": []})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def checker(pool: Pool, clock: Clock, **options: Any) -> RevocationChecker:
    http = httpx.AsyncClient(transport=httpx.MockTransport(pool.handle))
    return RevocationChecker(
        ENDPOINT, http_client=http, clock=clock, **{"check_seconds": 60.0, **options}
    )


async def test_a_token_is_asked_about_once_per_period_however_often_it_is_used() -> None:
    pool, clock = Pool(), Clock()
    check = checker(pool, clock)
    pool.delay = 0.05
    await asyncio.gather(*(check.check("tok-a") for _ in range(50)))  # concurrent: one call
    for _ in range(50):
        await check.check("tok-a")
    assert pool.calls == ["tok-a"]
    clock.now += 59
    await check.check("tok-a")
    assert len(pool.calls) == 1
    clock.now += 2  # the answer is a period old: ask again
    await check.check("tok-a")
    assert pool.calls == ["tok-a", "tok-a"]
    await check.check("tok-b")  # each token has its own answer
    assert pool.calls[-1] == "tok-b"


async def test_a_revoked_token_is_refused_and_stays_refused() -> None:
    pool, clock = Pool(), Clock()
    check = checker(pool, clock)
    await check.check("tok")
    pool.revoked.add("tok")
    await check.check("tok")  # still the cached answer within the period
    clock.now += 61
    for _ in range(3):
        with pytest.raises(Unauthorized) as refused:
            await check.check("tok")
        assert refused.value.error_code == "token_revoked"
        clock.now += 3600
    assert len(pool.calls) == 2  # "revoked" is cached for good


async def test_an_unreachable_pool_is_tolerated_for_the_grace_then_refused() -> None:
    pool, clock = Pool(), Clock()
    check = checker(pool, clock, outage_grace_seconds=300.0, retry_seconds=5.0)
    await check.check("tok-1")  # the pool's last answer: t=1000
    pool.status = 503
    clock.now += 100
    await check.check("tok-2")  # accepted unchecked, the pool asked once
    await check.check("tok-3")  # within the quiet period: not even asked
    assert pool.calls == ["tok-1", "tok-2"]
    clock.now += 201  # 301 s since the last answer
    with pytest.raises(ServiceUnavailable) as refused:
        await check.check("tok-4")
    assert refused.value.error_code == "auth_unavailable"
    assert refused.value.headers["Retry-After"] == "5"
    pool.status = 200  # back: answers again, and the outage clock restarts
    clock.now += 6
    await check.check("tok-4")
    assert pool.calls[-1] == "tok-4"


async def test_a_network_error_counts_as_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    clock = Clock()
    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    check = RevocationChecker(ENDPOINT, http_client=http, clock=clock, outage_grace_seconds=10)
    await check.check("tok")  # within the grace: accepted
    clock.now += 11
    with pytest.raises(ServiceUnavailable):
        await check.check("tok")


# --- sessions -----------------------------------------------------------------------


class CountingVerifier:
    """Local tokens, plus a revocation check period and a switch to revoke."""

    def __init__(self, check_seconds: float | None = None) -> None:
        self._local = LocalTokenVerifier(SECRET, "belfry-local", "belfry-local")
        self.revocation_check_seconds = check_seconds
        self.revoked: set[str] = set()
        self.verified = 0

    async def verify(self, token: str) -> Principal:
        self.verified += 1
        if token in self.revoked:
            raise Unauthorized("revoked", code="token_revoked")
        return await self._local.verify(token)


async def auth_of(token: str, verifier: CountingVerifier) -> SessionAuth:
    return SessionAuth(verifier, await verifier.verify(token), token)


async def test_a_session_ends_at_its_tokens_exp_without_leeway() -> None:
    token = mint_local_token(SETTINGS, "u-1", ["customer"], ttl_seconds=2)
    auth = await auth_of(token, CountingVerifier())
    started = time.time()
    with pytest.raises(Unauthorized) as ended:
        await asyncio.wait_for(auth.watch(), 5)
    assert ended.value.error_code == "token_expired"
    assert auth.expires_at - 0.05 <= time.time() <= auth.expires_at + 0.5
    assert time.time() - started <= 2.5


async def test_a_renewal_moves_the_deadline_and_takes_the_new_groups() -> None:
    verifier = CountingVerifier()
    auth = await auth_of(mint_local_token(SETTINGS, "u-1", ["customer"], ttl_seconds=2), verifier)
    first_exp = auth.expires_at
    watching = asyncio.create_task(auth.watch())
    await asyncio.sleep(0.5)
    fresh = mint_local_token(SETTINGS, "u-1", ["customer", "manager"], ttl_seconds=60)
    renewed = await auth.renew(fresh)
    assert auth.expires_at > first_exp + 50
    assert auth.principal is renewed
    assert auth.principal.is_manager
    await asyncio.sleep(max(0.0, first_exp - time.time()) + 0.5)
    assert not watching.done()  # past the first token's exp
    watching.cancel()


async def test_a_renewal_must_be_the_same_user_and_valid() -> None:
    verifier = CountingVerifier()
    auth = await auth_of(mint_local_token(SETTINGS, "u-1", [], ttl_seconds=60), verifier)
    before = auth.expires_at
    with pytest.raises(Unauthorized) as other:
        await auth.renew(mint_local_token(SETTINGS, "u-2", [], ttl_seconds=600))
    assert other.value.error_code == "subject_mismatch"
    with pytest.raises(Unauthorized) as junk:
        await auth.renew("not-a-token")
    assert junk.value.error_code == "invalid_token"
    assert auth.expires_at == before
    assert auth.user_id == "u-1"


async def test_an_expired_token_cannot_open_a_session() -> None:
    verifier = CountingVerifier()
    token = mint_local_token(SETTINGS, "u-1", [], ttl_seconds=1)
    principal = await verifier.verify(token)
    await asyncio.sleep(max(0.0, principal.claims["exp"] - time.time()) + 0.05)
    # the verifier's 30 s leeway still accepts it; a session does not
    with pytest.raises(Unauthorized) as refused:
        SessionAuth(verifier, await verifier.verify(token), token)
    assert refused.value.error_code == "token_expired"


async def test_a_session_rechecks_its_token_at_the_revocation_period() -> None:
    verifier = CountingVerifier(check_seconds=0.2)
    token = mint_local_token(SETTINGS, "u-1", [], ttl_seconds=60)
    auth = await auth_of(token, verifier)
    watching = asyncio.create_task(auth.watch())
    await asyncio.sleep(0.7)
    assert not watching.done()
    assert verifier.verified >= 3  # the first, and a re-check every ~0.2 s
    verifier.revoked.add(token)
    with pytest.raises(Unauthorized) as ended:
        await asyncio.wait_for(watching, 2)
    assert ended.value.error_code == "token_revoked"


async def test_local_tokens_are_not_rechecked() -> None:
    verifier = CountingVerifier(check_seconds=None)
    auth = await auth_of(mint_local_token(SETTINGS, "u-1", [], ttl_seconds=60), verifier)
    assert auth.check_seconds is None
    watching = asyncio.create_task(auth.watch())
    await asyncio.sleep(0.3)
    assert verifier.verified == 1
    watching.cancel()


# --- logs ---------------------------------------------------------------------------

JWT = mint_local_token(SETTINGS, "u-log", ["admin"])


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        (f'127.0.0.1:5 - "WebSocket /notifications/ws?token={JWT}&since=4" [accepted]', "since=4"),
        (f"GET /x?since=1&token={JWT} HTTP/1.1", "since=1"),
        ("GET /x?access_token=opaque-value-123&a=b", "a=b"),
        ("s3 /k?X-Amz-Security-Token=IQoJb3Jp%2Fabc&X-Amz-Date=1", "Date"),
        ("authorization: Bearer opaque.value-123", "authorization"),
        (f"a JWT anywhere: {JWT}.", "anywhere"),
    ],
)
def test_redact_blanks_tokens_and_keeps_the_rest(line: str, kept: str) -> None:
    redacted = redact(line)
    assert REDACTED in redacted
    assert kept in redacted
    for secret in (JWT, "opaque-value-123", "opaque.value-123", "IQoJb3Jp"):
        assert secret not in redacted


def test_redact_leaves_ordinary_lines_alone() -> None:
    for line in ("token_expired", "tokens=5", "user_id=u-1 room_id=r-2", "key=value"):
        assert redact(line) == line


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_no_log_line_carries_a_token(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", fmt)  # type: ignore[arg-type]
    try:
        # uvicorn's error logger with the handshake path as an argument, as it logs it
        logging.getLogger("uvicorn.error").info(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:1", f"/ws?token={JWT}"
        )
        log = get_logger("belfry.test")
        log.info("ws.opened", token=JWT, url=f"/ws?token={JWT}", user_id="u-log")
        try:
            raise ValueError(f"bad request /x?token={JWT}")
        except ValueError:
            log.exception("failed")
        output = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert JWT not in output
    assert JWT.split(".")[2] not in output  # not even the signature
    assert output.count(REDACTED) >= 4
    assert "u-log" in output
    assert "[accepted]" in output


def test_a_redacted_json_line_stays_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        logging.getLogger("uvicorn.error").info(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:1", f"/ws?token={JWT}&since=2"
        )
        line = capsys.readouterr().err.strip()
    finally:
        logging.getLogger().handlers.clear()
    event = json.loads(line)["event"]
    assert event == '127.0.0.1:1 - "WebSocket /ws?token=[redacted]&since=2" [accepted]'
