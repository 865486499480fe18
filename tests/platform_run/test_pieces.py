"""The platform process's pieces that need no running platform: the banner, which
services it loads, busy ports, and a demo with nothing to talk to."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import pytest

from services.platform.__main__ import Stopper
from services.platform.banner import Endpoints, redact, render_banner
from services.platform.composition import definitions, service_settings
from services.platform.demo import main as demo_main
from services.platform.embedded import PortUnavailable, bind_socket
from services.platform.settings import PlatformSettings
from shared.service import ServiceDefinition
from shared.settings import BelfrySettings
from tests.platform_run.conftest import ROOT, platform_env
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


def test_the_platform_refuses_to_start_on_a_busy_port() -> None:
    env = platform_env(None, "busy")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["BELFRY_PLATFORM_LOCAL_CHIME_PORT"] = str(taken.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "services.platform"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "BELFRY_PLATFORM_LOCAL_CHIME_PORT" in done.stderr, done.stderr[-2000:]


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
