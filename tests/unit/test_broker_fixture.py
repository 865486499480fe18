"""Under CI=true a missing broker fails the run; elsewhere broker tests skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_BROKER_TEST = "tests/bus/test_contract.py::test_health_reports_consumers[amqp]"


def run_with_dead_broker(ci: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/", "CI": ci}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_BROKER_TEST],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_a_missing_broker_fails_under_ci() -> None:
    result = run_with_dead_broker("true")
    assert result.returncode != 0
    assert "under CI=true broker tests must run" in result.stdout


@pytest.mark.slow
def test_a_missing_broker_skips_outside_ci() -> None:
    result = run_with_dead_broker("")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
