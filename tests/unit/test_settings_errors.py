"""A typo in a setting is one line naming the variable, never a traceback."""

from __future__ import annotations

import os

import pytest

from shared.settings import BelfrySettings
from shared.settings_errors import InvalidSettings, load_settings


def _problems(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **env: str
) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings) as raised:
        load_settings(BelfrySettings)
    assert raised.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == raised.value.problems
    return lines


def test_each_bad_variable_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _problems(
        monkeypatch,
        capsys,
        BELFRY_PORT="abc",
        BELFRY_PREFETCH="0",
        BELFRY_METRICS_PORT="x",  # int | None: two pydantic errors, one line
        BELFRY_RATE_LIMIT_WRITES="lots",
    )
    assert sorted(lines) == [
        "belfry: invalid setting BELFRY_METRICS_PORT='x': Input should be a valid integer, "
        "unable to parse string as an integer",
        "belfry: invalid setting BELFRY_PORT='abc': Input should be a valid integer, "
        "unable to parse string as an integer",
        "belfry: invalid setting BELFRY_PREFETCH='0': Input should be greater than or equal to 1",
        "belfry: invalid setting BELFRY_RATE_LIMIT_WRITES='lots': 'lots': a rate looks like "
        "'10/s burst 20', '30/min' or 'off'",
    ]


def test_the_variable_named_is_the_one_that_was_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BELFRY_PORT", raising=False)
    assert _problems(monkeypatch, capsys, PORT="eighty") == [
        "belfry: invalid setting PORT='eighty': Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_every_value_that_is_not_json_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pydantic-settings stops at the first; every one is still reported, and the
    environment is left as it was."""
    lines = _problems(
        monkeypatch,
        capsys,
        BELFRY_RETRY_DELAYS_SECONDS="[1,",
        BELFRY_CHIME_RATE_OPERATIONS="{",
        BELFRY_LOG_LEVEL="verbose",
    )
    assert [line.split("=")[0] for line in lines] == [
        "belfry: invalid setting BELFRY_RETRY_DELAYS_SECONDS",
        "belfry: invalid setting BELFRY_CHIME_RATE_OPERATIONS",
        "belfry: invalid setting BELFRY_LOG_LEVEL",
    ]
    assert "not valid JSON" in lines[0]
    assert lines[2].endswith("should be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    assert os.environ["BELFRY_RETRY_DELAYS_SECONDS"] == "[1,"
    assert os.environ["BELFRY_CHIME_RATE_OPERATIONS"] == "{"


def test_a_nested_error_says_where(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _problems(monkeypatch, capsys, BELFRY_CHIME_RATE_OPERATIONS='{"CreateMeeting": [1]}')
    assert lines == [
        "belfry: invalid setting BELFRY_CHIME_RATE_OPERATIONS='{\"CreateMeeting\": [1]}': "
        "at CreateMeeting.1: Field required"
    ]


def test_log_levels_are_the_real_ones_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BELFRY_LOG_LEVEL", "debug")
    assert load_settings(BelfrySettings).log_level == "DEBUG"
    monkeypatch.setenv("BELFRY_LOG_LEVEL", "Warning")
    assert BelfrySettings().log_level == "WARNING"
