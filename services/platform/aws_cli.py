"""`make aws ARGS="dynamodb list-tables"` (`python -m services.platform.aws_cli dynamodb
list-tables`): the AWS CLI (v1, the `awscli` package of the dev extra) against the
local stand-ins of a running `make run`, found from the same `BELFRY_*` settings as
`make token` finds its user pool:

- DynamoDB, S3, SQS, EventBridge, Cognito: `BELFRY_AWS_ENDPOINT_URL`, else the
  embedded moto server on `BELFRY_PLATFORM_LOCAL_AWS_PORT` (4566);
- `chime-sdk-*`: `BELFRY_CHIME_ENDPOINT_URL`, else the embedded emulator on
  `BELFRY_PLATFORM_LOCAL_CHIME_PORT` (9911);

in `BELFRY_AWS_REGION`, with dummy credentials unless AWS credentials are configured
(`AWS_ACCESS_KEY_ID` or `AWS_PROFILE`, as `shared.aws.local_credentials`), and without the instance
metadata lookups. An `--endpoint-url` or `--region` given in ARGS wins. docker compose:
`BELFRY_AWS_ENDPOINT_URL=http://127.0.0.1:5000 make aws ARGS="s3 ls"` (moto's published
port). It never talks to real AWS: with `BELFRY_PLATFORM_EMBED_AWS=false` and no
endpoint it refuses (use the `aws` command itself there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.platform.embedded import url_of
from services.platform.settings import PlatformSettings

USAGE = 'usage: make aws ARGS="<service> <command> [options]", e.g. ARGS="dynamodb list-tables"'


# Any key works against the stand-ins: the one the services use there (shared.aws).
LOCAL_KEY = "belfry-local"


def local_endpoint(endpoint: str) -> bool:
    return not (urlsplit(endpoint).hostname or "").endswith("amazonaws.com")


class NoStandIn(Exception):
    """The settings name no local stand-in for the service (real AWS)."""


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]
    endpoint: str | None


def service_of(args: Sequence[str]) -> str | None:
    """The CLI's service: the first argument that is not an option (or its value)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("--"):
            # `--flag value`, unless `--flag=value` or a switch the CLI knows as such.
            skip = "=" not in arg and arg not in SWITCHES
            continue
        return arg
    return None


# The AWS CLI's global options that take no value (`aws help topics`).
SWITCHES = frozenset({"--debug", "--no-verify-ssl", "--no-paginate", "--no-sign-request"})


def endpoint_for(service: str | None, settings: PlatformSettings) -> str:
    """Where `make run` with these settings serves `service`'s stand-in."""
    if service is not None and service.startswith("chime"):
        if settings.chime_endpoint_url:
            return settings.chime_endpoint_url
        if settings.embeds_chime:
            return url_of(settings.host, settings.platform_local_chime_port)
        raise NoStandIn("BELFRY_PLATFORM_EMBED_CHIME=false and no BELFRY_CHIME_ENDPOINT_URL")
    if settings.aws_endpoint_url:
        return settings.aws_endpoint_url
    if settings.embeds_aws:
        return url_of(settings.host, settings.platform_local_aws_port)
    raise NoStandIn("BELFRY_PLATFORM_EMBED_AWS=false and no BELFRY_AWS_ENDPOINT_URL")


def invocation(
    args: Sequence[str], settings: PlatformSettings, environ: Mapping[str, str]
) -> Invocation:
    """The `aws` command line and environment for `args` (no I/O)."""
    given = option_values(args)
    env = dict(environ)
    env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    env.setdefault("AWS_PAGER", "")
    extra: list[str] = []
    endpoint = given.get("--endpoint-url")
    if endpoint is None:
        endpoint = endpoint_for(service_of(args), settings)
        extra += ["--endpoint-url", endpoint]
    if "--region" not in given:
        extra += ["--region", settings.aws_region]
    if not ({"AWS_ACCESS_KEY_ID", "AWS_PROFILE"} & set(env)) and local_endpoint(endpoint):
        env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = LOCAL_KEY
    return Invocation([sys.executable, "-m", "awscli", *extra, *args], env, endpoint)


def option_values(args: Sequence[str]) -> dict[str, str]:
    """`--name value` and `--name=value` of `args`, by name (switches: "")."""
    found: dict[str, str] = {}
    for index, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        name, equals, value = arg.partition("=")
        if not equals and name not in SWITCHES and index + 1 < len(args):
            value = args[index + 1]
        found[name] = value
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        print(USAGE)
        return 0 if args else 2
    try:
        call = invocation(args, PlatformSettings(), os.environ)
    except NoStandIn as exc:
        print(
            f"error: no local stand-in ({exc}); make aws never talks to real AWS", file=sys.stderr
        )
        return 2
    if call.endpoint:
        print(f"# aws {' '.join(args)}  (at {call.endpoint})", file=sys.stderr)
    return subprocess.call(call.argv, env=call.env)  # noqa: S603 - our own argv


if __name__ == "__main__":
    sys.exit(main())
