"""The platform process's pieces that need no running platform: the banner, which
services it loads, busy ports, and a demo with nothing to talk to."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import uuid

import httpx
import jwt
import pytest

from services.platform.__main__ import Stopper
from services.platform.banner import Endpoints, redact, render_banner
from services.platform.composition import definitions, service_settings
from services.platform.demo import main as demo_main
from services.platform.embedded import PortUnavailable, bind_socket
from services.platform.identity import (
    PoolAdmin,
    PoolUnavailable,
    SignInFailed,
    UserPool,
    sign_in,
)
from services.platform.settings import PlatformSettings
from services.platform.tokens import local_pool_endpoint
from services.platform.tokens import main as token_main
from shared.auth import LocalTokenVerifier, create_verifier
from shared.service import ServiceDefinition
from shared.settings import BelfrySettings
from tests.support import free_port, wait_until

ENDPOINTS = Endpoints(
    gateway="http://127.0.0.1:8080",
    aws="http://127.0.0.1:4566",
    chime="http://127.0.0.1:9911",
    aws_embedded=True,
    chime_embedded=True,
)


def test_the_banner_says_where_everything_is_and_how_to_get_a_token() -> None:
    settings = PlatformSettings(amqp_url="amqp://belfry:s3cret@rabbit:5672/belfry")
    text = render_banner(settings, ENDPOINTS, ["scheduler", "rooms"], ["/rooms", "/schedule"])
    assert "http://127.0.0.1:8080/docs" in text
    assert "http://127.0.0.1:4566 (embedded moto)" in text
    assert "http://127.0.0.1:9911/_emulator" in text
    assert "amqp://belfry:***@rabbit:5672/belfry" in text
    assert "s3cret" not in text
    assert "scheduler, rooms in one process" in text
    assert "/rooms  /schedule" in text
    for group in ("admin", "manager", "customer"):
        assert f"GROUPS={group}" in text


def test_the_banner_on_real_aws_and_cognito() -> None:
    settings = PlatformSettings(auth_mode="cognito", cognito_user_pool_id="eu-west-1_Pool")
    real = Endpoints("http://127.0.0.1:8080", None, None, aws_embedded=False, chime_embedded=False)
    text = render_banner(settings, real, ["rooms"])
    assert "real AWS" in text
    assert "real Chime SDK" in text
    assert "eu-west-1_Pool" in text
    assert "make token" not in text
    assert "in-process memory bus" in text


POOL = UserPool("http://127.0.0.1:4566", "us-east-1", "us-east-1_Local", "console-client")


def test_the_banner_with_the_local_pool_names_its_users_and_make_token() -> None:
    settings = PlatformSettings(auth_mode="local")  # the pool, not these, decides
    endpoints = dataclasses.replace(ENDPOINTS, pool=POOL)
    text = render_banner(settings, endpoints, ["chat"])
    assert "us-east-1_Local" in text
    assert "console-client" in text
    assert "http://127.0.0.1:8080/auth/config" in text
    assert "password belfry-local" in text
    for name in ("alice", "mia", "max", "carl", "cora"):
        assert name in text
    assert "carl with mia" in text
    assert "local signing key" not in text
    for group in ("admin", "manager", "customer"):
        assert f"GROUPS={group}" in text


def test_the_pool_settings_reach_every_service() -> None:
    configs = service_settings(
        definitions(),
        aws_endpoint_url=POOL.endpoint,
        chime_endpoint_url=None,
        auth=POOL.service_settings(),
    )
    for name, config in configs.items():
        assert config.auth_mode == "cognito", name
        assert config.cognito_user_pool_id == "us-east-1_Local", name
        assert config.cognito_client_ids == ("console-client",), name
        assert config.cognito_jwks_url == (
            "http://127.0.0.1:4566/us-east-1_Local/.well-known/jwks.json"
        ), name
        assert config.cognito_endpoint_url == POOL.endpoint, name
        assert not isinstance(create_verifier(config), LocalTokenVerifier), name
    plain = service_settings(definitions(), aws_endpoint_url=None, chime_endpoint_url=None)
    assert all(c.auth_mode == PlatformSettings().auth_mode for c in plain.values())


def no_pool_here(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BELFRY_AWS_ENDPOINT_URL", "BELFRY_AUTH_MODE", "BELFRY_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BELFRY_PLATFORM_LOCAL_AWS_PORT", str(free_port()))


def test_make_token_finds_the_pool_where_make_run_puts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    no_pool_here(monkeypatch)
    port = PlatformSettings().platform_local_aws_port
    assert local_pool_endpoint(PlatformSettings()) == f"http://127.0.0.1:{port}"
    configured = PlatformSettings(aws_endpoint_url="http://moto:5000")
    assert local_pool_endpoint(configured) == "http://moto:5000"


def test_make_token_without_a_pool(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_pool_here(monkeypatch)
    assert token_main(["--sub", "alice", "--groups", "admin", "--pool"]) == 1
    assert "no Cognito at http://127.0.0.1:" in capsys.readouterr().err
    # No pool, local mode: a local HS256 token, and a note saying so.
    assert token_main(["--sub", "alice", "--groups", "admin"]) == 0
    captured = capsys.readouterr()
    assert "local HS256 token" in captured.err
    assert len(captured.out.strip().split(".")) == 3
    monkeypatch.setenv("BELFRY_AUTH_MODE", "cognito")
    assert token_main(["--sub", "alice", "--groups", "admin"]) == 1
    assert token_main(["--sub", "alice", "--local"]) == 2
    assert "local tokens are accepted only in local mode" in capsys.readouterr().err


async def test_make_token_local_is_what_a_local_run_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_pool_here(monkeypatch)
    assert token_main(["--sub", "alice", "--groups", "admin,manager", "--local"]) == 0
    principal = await create_verifier(PlatformSettings()).verify(capsys.readouterr().out.strip())
    assert principal.user_id == "alice"
    assert principal.groups == {"admin", "manager"}
    assert token_main(["--sub", "alice", "--groups", "root", "--local"]) == 2
    assert "unknown group" in capsys.readouterr().err
    assert token_main(["--sub", " ", "--local"]) == 2


def test_redact_leaves_urls_without_a_password_alone() -> None:
    assert redact("memory://") == "memory://"
    assert redact("amqp://guest:guest@127.0.0.1/") == "amqp://guest:***@127.0.0.1/"


def test_the_platform_runs_the_four_services() -> None:
    loaded = definitions()
    assert all(isinstance(d, ServiceDefinition) for d in loaded)
    assert [d.name for d in loaded] == [
        "scheduler",
        "rooms",
        "chat",
        "notifier",
    ]


def test_the_embedded_endpoints_reach_every_service() -> None:
    class Fake(BelfrySettings):
        pass

    async def build(*_: object) -> None:
        raise AssertionError("not built here")

    definition = ServiceDefinition("fake", "Fake", [], Fake, build)  # type: ignore[arg-type]
    configs = service_settings(
        [definition], aws_endpoint_url="http://127.0.0.1:1", chime_endpoint_url=None
    )
    assert isinstance(configs["fake"], Fake)
    assert configs["fake"].aws_endpoint_url == "http://127.0.0.1:1"
    assert configs["fake"].chime_endpoint_url is None


def test_a_busy_port_names_the_setting_that_moves_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortUnavailable, match="in use; choose another port with BELFRY_PORT"):
            bind_socket("127.0.0.1", port, "the gateway", "BELFRY_PORT")


def test_the_demo_fails_clearly_without_a_platform(capsys: pytest.CaptureFixture[str]) -> None:
    code = demo_main(["--url", f"http://127.0.0.1:{free_port()}", "--ready-timeout", "0.5"])
    captured = capsys.readouterr()
    assert code == 1
    assert "[ 1/21]" in captured.out
    assert "FAILED at [1/21] the platform is ready" in captured.err
    assert "make run" in captured.err


async def test_the_first_signal_asks_for_a_stop_and_the_second_forces_it() -> None:
    forced: list[bool] = []
    stopper = Stopper(lambda: forced.append(True))
    stopper.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stopper.requested.wait(), 5)
        assert stopper.signal_name == "SIGTERM"
        assert forced == []
        os.kill(os.getpid(), signal.SIGINT)
        await wait_until(lambda: forced == [True], timeout=5, message="the forced stop")
    finally:
        stopper.uninstall()


def test_an_unset_endpoint_means_embedded_unless_embedding_is_off() -> None:
    assert PlatformSettings().embeds_aws
    assert PlatformSettings().embeds_chime
    configured = PlatformSettings(
        aws_endpoint_url="http://moto:5000", chime_endpoint_url="http://chime:9911"
    )
    assert not configured.embeds_aws
    assert not configured.embeds_chime
    real = PlatformSettings(platform_embed_aws=False, platform_embed_chime=False)
    assert not real.embeds_aws
    assert not real.embeds_chime
    assert real.aws_endpoint_url is None


async def test_the_pool_is_found_or_created_by_name(moto_url: str) -> None:
    name = f"belfry-{uuid.uuid4().hex[:8]}"  # the session's moto is shared
    async with PoolAdmin(moto_url, "eu-west-1") as admin:
        with pytest.raises(PoolUnavailable, match="no user pool named"):
            await admin.find_pool(name)
        made = await admin.ensure_pool(name)
        assert await admin.ensure_pool(name) == made  # the same pool, client and groups
        assert await admin.find_pool(name) == made
        assert made.region == "eu-west-1"
        assert made.user_pool_id.startswith("eu-west-1_")
        assert await admin.group_names(made) == {"admin", "manager", "customer"}
        subs = await admin.seed(made, {"ida": ["customer"], "ole": []})
        assert subs == await admin.seed(made, {"ida": ["customer"], "ole": []})
        assert await admin.sub_of(made, "nobody") is None
        with pytest.raises(ValueError, match="unknown group"):
            await admin.ensure_user(made, "ida", ["root"])
    token = await sign_in(made, "ida")
    async with httpx.AsyncClient(timeout=5) as http:
        keys = (await http.get(made.jwks_url)).json()
    key = jwt.PyJWK(keys["keys"][0], algorithm="RS256").key
    claims = jwt.decode(token, key, algorithms=["RS256"], issuer=made.issuer)
    assert claims["client_id"] == made.client_id
    assert claims["sub"] == subs["ida"]
    assert claims["cognito:groups"] == ["customer"]
    with pytest.raises(SignInFailed, match="could not sign in"):
        await sign_in(made, "ida", "not-the-password")
