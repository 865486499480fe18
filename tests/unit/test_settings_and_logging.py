"""Settings from the environment, and structured logs that carry the ids."""

from __future__ import annotations

import json
import logging
import os

import pytest

from shared.logging import configure_logging, get_logger, log_context
from shared.settings import BelfrySettings


def test_settings_read_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@rabbit:5672/belfry")
    monkeypatch.setenv("BELFRY_PORT", "9000")
    monkeypatch.setenv("BELFRY_PREFETCH", "150")
    monkeypatch.setenv("BELFRY_RETRY_DELAYS_SECONDS", "[1, 2]")
    settings = BelfrySettings()
    assert settings.amqp_url == "amqp://u:p@rabbit:5672/belfry"
    assert settings.port == 9000
    assert settings.prefetch == 150
    assert settings.retry_delays_seconds == (1.0, 2.0)
    monkeypatch.setenv("BELFRY_AMQP_URL", "memory://")  # the specific name wins
    assert BelfrySettings().amqp_url == "memory://"


def test_settings_refuse_values_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BELFRY_PREFETCH", "0")
    with pytest.raises(ValueError, match="prefetch"):
        BelfrySettings()


def test_a_process_given_the_environment_of_settings_reads_them_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.rooms.settings import RoomsSettings

    settings = RoomsSettings(
        amqp_url="amqp://u:p@rabbit/",
        auth_local_secret="s3cret",
        chime_rate_operations={"SendChannelMessage": (20, 40)},
    )
    env = settings.environment(port=9001, retry_delays_seconds=[0.5], rooms_join_batch_max=7)
    assert env["BELFRY_AUTH_LOCAL_SECRET"] == "s3cret"
    assert "BELFRY_AWS_ENDPOINT_URL" not in env  # unset stays unset
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = settings.model_dump() | {
        "port": 9001,
        "retry_delays_seconds": (0.5,),
        "rooms_join_batch_max": 7,
    }
    read = RoomsSettings().model_dump()
    assert {k: str(v) for k, v in read.items()} == {k: str(v) for k, v in expected.items()}
    assert RoomsSettings().auth_local_secret.get_secret_value() == "s3cret"


def test_logs_are_json_key_values_with_the_bound_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        log = get_logger("belfry.test")
        with log_context(correlation_id="req-9", event_id="ev-1"):
            log.info("meeting.created", room_id="r1", meeting_id="m1")
        log.info("outside")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    created = next(line for line in lines if line["event"] == "meeting.created")
    assert created["correlation_id"] == "req-9"
    assert created["event_id"] == "ev-1"
    assert created["room_id"] == "r1"
    assert created["level"] == "info"
    assert "timestamp" in created
    outside = next(line for line in lines if line["event"] == "outside")
    assert "correlation_id" not in outside
