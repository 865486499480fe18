"""`make aws ARGS=...`: the AWS CLI against a running platform's stand-ins, found from
the same settings as `make token` (services/platform/aws_cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from services.platform.aws_cli import NoStandIn, invocation, main, service_of
from services.platform.settings import PlatformSettings
from tests.platform_run.conftest import ROOT, RunningPlatform

SERVICES = ("scheduler", "rooms", "chat", "notifier")


def make_aws(platform: RunningPlatform, args: str) -> subprocess.CompletedProcess[str]:
    """`make aws ARGS=...` in the platform's environment, as a user in the shell that
    ran `make run` (`-o` keeps make from re-installing the venv first)."""
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "aws", f"ARGS={args}"],
        cwd=ROOT,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_make_aws_lists_the_platforms_tables(memory_platform: RunningPlatform) -> None:
    result = make_aws(memory_platform, "dynamodb list-tables")
    assert result.returncode == 0, result.stderr
    tables = json.loads(result.stdout)["TableNames"]
    prefix = memory_platform.env["BELFRY_TABLE_PREFIX"]
    for service in SERVICES:
        assert any(t.startswith(f"{prefix}-{service}-") for t in tables), (service, tables)
    assert memory_platform.aws_url in result.stderr  # it says where it went


def test_make_aws_reaches_s3_and_the_chime_emulator(memory_platform: RunningPlatform) -> None:
    buckets = make_aws(memory_platform, "s3api list-buckets")
    assert buckets.returncode == 0, buckets.stderr
    names = [b["Name"] for b in json.loads(buckets.stdout)["Buckets"]]
    assert "belfry-attachments" in names
    instances = make_aws(memory_platform, "chime-sdk-identity list-app-instances")
    assert instances.returncode == 0, instances.stderr
    assert [i["Name"] for i in json.loads(instances.stdout)["AppInstances"]] == ["belfry"]
    assert memory_platform.chime_url in instances.stderr


def test_a_failing_command_keeps_the_clis_exit_code(memory_platform: RunningPlatform) -> None:
    result = make_aws(memory_platform, "dynamodb describe-table --table-name no-such-table")
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr


def settings(**values: Any) -> PlatformSettings:
    """Platform settings from these values alone (none of the shell's endpoints)."""
    defaults = {"aws_endpoint_url": None, "chime_endpoint_url": None, "host": "127.0.0.1"}
    return PlatformSettings(**{**defaults, **values})


def test_the_endpoint_follows_the_settings_as_make_token_does() -> None:
    embedded = invocation(["s3", "ls"], settings(platform_local_aws_port=4999), {})
    assert embedded.argv[:3] == [sys.executable, "-m", "awscli"]
    assert embedded.argv[3:7] == [
        "--endpoint-url",
        "http://127.0.0.1:4999",
        "--region",
        "us-east-1",
    ]
    assert embedded.argv[7:] == ["s3", "ls"]
    assert embedded.env["AWS_ACCESS_KEY_ID"] == "belfry-local"
    assert embedded.env["AWS_EC2_METADATA_DISABLED"] == "true"

    compose = invocation(
        ["dynamodb", "list-tables"], settings(aws_endpoint_url="http://127.0.0.1:5000"), {}
    )
    assert compose.endpoint == "http://127.0.0.1:5000"
    chime = invocation(
        ["--output", "text", "chime-sdk-messaging", "list-channels"],
        settings(platform_local_chime_port=9912),
        {},
    )
    assert chime.endpoint == "http://127.0.0.1:9912"


def test_what_the_caller_says_wins() -> None:
    call = invocation(
        ["--endpoint-url=http://elsewhere:1", "--region", "eu-west-1", "sqs", "list-queues"],
        settings(),
        {"AWS_ACCESS_KEY_ID": "mine", "AWS_SECRET_ACCESS_KEY": "secret"},
    )
    assert "--endpoint-url" not in call.argv[3:5]
    assert call.argv.count("--region") == 1
    assert call.endpoint == "http://elsewhere:1"
    assert call.env["AWS_ACCESS_KEY_ID"] == "mine"


def test_it_never_points_at_real_aws() -> None:
    with pytest.raises(NoStandIn):
        invocation(["s3", "ls"], settings(platform_embed_aws=False), {})
    with pytest.raises(NoStandIn):
        invocation(
            ["chime-sdk-identity", "list-app-instances"], settings(platform_embed_chime=False), {}
        )


def test_the_service_is_the_first_word_that_is_not_an_option() -> None:
    assert service_of(["--debug", "--output", "json", "dynamodb", "scan"]) == "dynamodb"
    assert service_of(["--output=json", "s3", "ls"]) == "s3"
    assert service_of([]) is None


def test_without_arguments_it_says_how(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert 'ARGS="dynamodb list-tables"' in capsys.readouterr().out
