"""`make token SUB=alice GROUPS=admin` (`python -m services.platform.tokens --sub alice
--groups admin`): an access token of the running `make run`'s Cognito user pool.

The pool is found the way `make run` places it, from the same `BELFRY_*` settings:
the moto server at `BELFRY_AWS_ENDPOINT_URL`, else the embedded one on
`BELFRY_PLATFORM_LOCAL_AWS_PORT` (4566), in `BELFRY_AWS_REGION`; the pool and app
client by name (`belfry-local`, `belfry-console`). The user `SUB` is created if
missing (password `belfry-local`), their groups are made exactly `GROUPS` (a
group they had and `GROUPS` lacks is taken away), and the token is Cognito's
answer to a password sign-in. The token's `sub` is the user's Cognito id (a
UUID), `SUB` its username.

Local HS256 tokens (for a platform in `BELFRY_AUTH_MODE=local`: services run
alone, docker compose, `BELFRY_PLATFORM_LOCAL_POOL=false make run`): `--local`
(`make token ... LOCAL=1`); without `--local` or `--pool`, also when no pool is
reachable and `BELFRY_AUTH_MODE` is `local` (with a note on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence

from services.platform.embedded import url_of
from services.platform.identity import PoolAdmin, PoolUnavailable, SignInFailed, sign_in
from services.platform.settings import PlatformSettings
from shared.auth.local import print_local_token
from shared.settings_errors import load_settings


def local_pool_endpoint(settings: PlatformSettings) -> str:
    """Where `make run` with these settings serves its user pool (its moto server)."""
    return settings.aws_endpoint_url or url_of(settings.host, settings.platform_local_aws_port)


async def pool_token(
    settings: PlatformSettings,
    username: str,
    groups: Iterable[str],
    *,
    endpoint: str | None = None,
) -> str:
    """An access token of the local pool for `username`, whose groups become exactly
    `groups`; `PoolUnavailable` when there is no pool, `ValueError` for bad input."""
    where = endpoint or local_pool_endpoint(settings)
    # One attempt, short timeouts: "no platform running" should be a quick answer.
    async with PoolAdmin(where, settings.aws_region, timeout_seconds=3, max_attempts=1) as admin:
        pool = await admin.find_pool()
        await admin.ensure_user(pool, username, groups)
    return await sign_in(pool, username)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.platform.tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sub", required=True, help="the username (an HS256 token's sub)")
    parser.add_argument(
        "--groups", default="", help="comma-separated: admin, manager, customer (may be empty)"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--local", action="store_true", help="an HS256 token, never the pool")
    which.add_argument("--pool", action="store_true", help="the pool's token, or an error")
    parser.add_argument("--ttl", type=int, default=3600, help="HS256 tokens: lifetime in seconds")
    return parser


def _local(settings: PlatformSettings, sub: str, groups: list[str], ttl: int) -> int:
    return print_local_token(settings, sub, groups, ttl)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sub = args.sub.strip()
    if not sub:
        print("error: SUB is empty; try: make token SUB=alice GROUPS=admin", file=sys.stderr)
        return 2
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    settings = load_settings(PlatformSettings)  # a bad value: one line naming it, exit 2
    if args.local:
        return _local(settings, sub, groups, args.ttl)
    try:
        token = asyncio.run(pool_token(settings, sub, groups))
    except (ValueError, SignInFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except PoolUnavailable as exc:
        if args.pool or settings.auth_mode != "local":
            print(f"error: {exc}; is `make run` running with these settings?", file=sys.stderr)
            return 1
        print(
            f"note: {exc}; printing a local HS256 token instead "
            "(accepted only by a BELFRY_AUTH_MODE=local run)",
            file=sys.stderr,
        )
        return _local(settings, sub, groups, args.ttl)
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
