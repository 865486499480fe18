"""What a newcomer hits first: the demo's verdict, the banner's demo command,
Ctrl-C during start-up, a typo in a setting, busy ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.platform.banner import Endpoints, demo_command, render_banner
from services.platform.demo_client import Emulator, find_emulator, reachable
from services.platform.local_info import platform_info
from services.platform.settings import PlatformSettings
from services.platform.timeline import DemoFailed
from tests.conftest import unique
from tests.platform_run.conftest import ROOT, RunningPlatform, platform_env
from tests.support import free_port

# --- the demo: exit code 0 only for what happened ----------------------------------


def newcomer_env(platform: RunningPlatform) -> dict[str, str]:
    """A second terminal's environment: none of the platform's port settings, only
    what the banner says to set (`BELFRY_URL`)."""
    env = {
        k: v
        for k, v in platform.env.items()
        if not k.startswith("BELFRY_PLATFORM_LOCAL_") and k not in ("BELFRY_PORT", "PORT")
    }
    env["BELFRY_URL"] = platform.url
    return env


def run_demo(platform: RunningPlatform, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "services.platform.demo", "--lead-seconds", "2", *args],
        cwd=ROOT,
        env=newcomer_env(platform),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def step_line(output: str, number: int) -> str:
    found = [line for line in output.splitlines() if line.startswith(f"[{number:>2}/21]")]
    assert len(found) == 1, output
    return found[0]


def test_the_demo_fails_at_the_step_whose_emulator_does_not_answer(
    memory_platform: RunningPlatform,
) -> None:
    closed = free_port()  # nothing listens there
    code, output = run_demo(memory_platform, "--chime-url", f"http://127.0.0.1:{closed}")
    assert code != 0, output
    line = step_line(output, 7)
    assert "their browsers connect" in line
    assert line.endswith("FAILED"), line
    assert not re.search(r"\bok\b", line), line
    assert "Demo FAILED at [7/21] their browsers connect" in output
    assert f"127.0.0.1:{closed}" in output
    assert "not reachable" in output
    assert "Both stories played out" not in output


def test_the_platform_names_its_emulator_and_the_banner_the_demo_command(
    memory_platform: RunningPlatform,
) -> None:
    info = httpx.get(f"{memory_platform.url}/platform/info", timeout=5)
    assert info.status_code == 200, info.text
    chime = info.json()["chime"]
    assert chime["endpoint"] == memory_platform.chime_url
    assert chime["embedded"] is True
    assert chime["emulator_control"] == f"{memory_platform.chime_url}/_emulator"
    # Not on port 8080: the banner gives the exact command, with BELFRY_URL.
    assert f"BELFRY_URL={memory_platform.url} make demo" in memory_platform.logs()


async def test_the_demo_finds_the_emulator_the_platform_names() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/platform/info"
        return httpx.Response(
            200,
            json={
                "gateway": "http://gw",
                "aws": {"endpoint": None, "embedded": False},
                "chime": {"endpoint": None, "embedded": False, "emulator_control": None},
            },
        )

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), base_url="http://gw"
    ) as http:
        real = await find_emulator(http, None)
        assert real.url is None
        given = await find_emulator(http, "http://chime:9911/")
        assert given == Emulator("http://chime:9911", "--chime-url")
    with pytest.raises(DemoFailed, match=r"no Chime SDK emulator to drive: .*real Chime SDK"):
        await reachable(real)


def test_the_platform_info_names_a_configured_emulator() -> None:
    configured = Endpoints(
        gateway="http://127.0.0.1:8080",
        aws="http://moto:5000",
        chime="http://chime:9911",
        aws_embedded=False,
        chime_embedded=False,
    )
    info = platform_info(configured)
    assert info.chime.endpoint == "http://chime:9911"
    assert info.chime.emulator_control == "http://chime:9911/_emulator"
    nowhere = Endpoints("http://x", aws=None, chime=None, aws_embedded=False, chime_embedded=False)
    real = platform_info(nowhere)
    assert real.chime.emulator_control is None


def test_the_banner_prints_the_exact_demo_command() -> None:
    assert demo_command("http://127.0.0.1:8080") == "make demo"
    assert demo_command("http://127.0.0.1:18080") == "BELFRY_URL=http://127.0.0.1:18080 make demo"

    def banner(gateway: str) -> str:
        endpoints = Endpoints(
            gateway=gateway, aws=None, chime=None, aws_embedded=False, chime_embedded=False
        )
        return render_banner(PlatformSettings(), endpoints, ["rooms"])

    assert "Play both stories: make demo " in banner("http://127.0.0.1:8080")
    moved = banner("http://127.0.0.1:18080")
    assert "Play both stories: BELFRY_URL=http://127.0.0.1:18080 make demo " in moved
    assert "Play both stories: make demo " not in moved


# --- Ctrl-C during start-up -----------------------------------------------------------


def _closed_broker() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/"


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} first:\n{path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not seen within {timeout:g} s:\n{path.read_text()[-3000:]}")
        time.sleep(0.1)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running at its end is killed."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _start(
    module: str, env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    started.append(process)
    return process


def _interrupt_during_start_up(
    process: subprocess.Popen[bytes], log: Path, sig: signal.Signals
) -> tuple[int, float, str]:
    _wait_for(log, '"bus.connect_retry"', process, timeout=90)
    sent = time.monotonic()
    process.send_signal(sig)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 10 s after {sig.name}:\n{log.read_text()[-3000:]}")
    return code, time.monotonic() - sent, log.read_text(errors="replace")


def test_ctrl_c_cancels_the_platform_start_up_at_once(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    env = platform_env(None, unique("sig"))
    env["AMQP_URL"] = _closed_broker()  # retried for 30 s before giving up
    log = tmp_path / "platform.log"
    process = _start("services.platform", env, log, started)
    code, seconds, output = _interrupt_during_start_up(process, log, signal.SIGINT)
    assert code == 130, output[-3000:]
    assert seconds < 2, f"{seconds:.1f} s after SIGINT:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert output.count("start-up cancelled by SIGINT") == 1, output[-3000:]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_a_single_service_start_up_at_once(
    sig: signal.Signals,
    code: int,
    moto_url: str,
    tmp_path: Path,
    started: list[subprocess.Popen[bytes]],
) -> None:
    env = service_env(moto_url)
    env["AMQP_URL"] = _closed_broker()
    log = tmp_path / "scheduler.log"
    process = _start("services.scheduler", env, log, started)
    exit_code, seconds, output = _interrupt_during_start_up(process, log, sig)
    assert exit_code == code, output[-3000:]
    assert seconds < 2, f"{seconds:.1f} s after {sig.name}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert f"belfry: scheduler start-up cancelled by {sig.name}" in output


def service_env(moto_url: str) -> dict[str, str]:
    env = platform_env(None, unique("svc"))
    env.update(
        {
            "BELFRY_AWS_ENDPOINT_URL": moto_url,
            "BELFRY_CHIME_ENDPOINT_URL": "http://127.0.0.1:1",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        }
    )
    return env


# --- a typo in a setting: one line naming the variable, exit code 2 ------------------


def _refused(*command: str, env: dict[str, str]) -> tuple[str, float]:
    """Runs `python -m <command>`, which must refuse to start: exit 2, no traceback.
    Its stderr and how long it took."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr, time.monotonic() - started


ENTRY_POINTS = [
    ["services.platform"],
    ["services.rooms"],
    ["services.chat"],
    ["services.platform.tokens", "--sub", "alice", "--groups", "admin"],
    ["services.platform.demo"],
]


@pytest.mark.parametrize("command", ENTRY_POINTS, ids=lambda c: c[0])
def test_invalid_settings_are_one_line_per_variable(command: list[str]) -> None:
    env = platform_env(None, unique("bad"))
    env.update({"BELFRY_PORT": "abc", "BELFRY_LOG_LEVEL": "verbose"})
    stderr, _ = _refused(*command, env=env)
    lines = stderr.strip().splitlines()
    assert sorted(lines) == [
        "belfry: invalid setting BELFRY_LOG_LEVEL='verbose': should be one of DEBUG, INFO, "
        "WARNING, ERROR, CRITICAL",
        "belfry: invalid setting BELFRY_PORT='abc': Input should be a valid integer, "
        "unable to parse string as an integer",
    ], stderr


def test_the_platform_names_a_bad_setting_of_any_of_its_services() -> None:
    env = platform_env(None, unique("bad"))
    env.update({"BELFRY_ROOMS_JOIN_BATCH_MAX": "many", "BELFRY_LOG_FORMAT": "fancy"})
    stderr, _ = _refused("services.platform", env=env)
    lines = stderr.strip().splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].startswith("belfry: invalid setting BELFRY_LOG_FORMAT='fancy': "), lines
    assert lines[1].startswith("belfry: invalid setting BELFRY_ROOMS_JOIN_BATCH_MAX='many': ")


# --- busy ports: all named at once -------------------------------------------------------


@pytest.fixture
def taken() -> Iterator[list[int]]:
    """Two ports something else listens on."""
    sockets = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sockets.append(sock)
    yield [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()


def test_the_platform_names_every_busy_port_at_once(taken: list[int]) -> None:
    env = platform_env(None, unique("busy"))
    env["BELFRY_PORT"] = str(taken[0])
    env["BELFRY_PLATFORM_LOCAL_CHIME_PORT"] = str(taken[1])
    stderr, seconds = _refused("services.platform", env=env)
    assert "2 ports are not available" in stderr, stderr
    assert f"127.0.0.1:{taken[0]} is in use; choose another port with BELFRY_PORT" in stderr
    assert (
        f"127.0.0.1:{taken[1]} is in use; choose another port with "
        "BELFRY_PLATFORM_LOCAL_CHIME_PORT" in stderr
    )
    assert seconds < 30, seconds


def test_a_service_names_its_busy_http_and_metrics_ports_at_once(
    taken: list[int], moto_url: str
) -> None:
    env = service_env(moto_url)
    env["BELFRY_PORT"] = str(taken[0])
    env["BELFRY_METRICS_PORT"] = str(taken[1])
    stderr, seconds = _refused("services.rooms", env=env)
    assert "2 ports are not available" in stderr, stderr
    assert f"127.0.0.1:{taken[0]} is in use; choose another port with BELFRY_PORT" in stderr
    assert f"127.0.0.1:{taken[1]} is in use; choose another port with BELFRY_METRICS_PORT" in stderr
    assert seconds < 30, seconds
