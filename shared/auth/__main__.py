"""`python -m shared.auth token --sub alice --groups admin,manager`: print a local token."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from shared.settings import BelfrySettings

from .local import print_local_token


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.auth")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print a bearer token that a local run accepts")
    token.add_argument("--sub", required=True, help="the user id (the token's sub)")
    token.add_argument(
        "--groups", default="", help="comma-separated: admin, manager, customer (may be empty)"
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--username", default=None, help="defaults to --sub")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sub = args.sub.strip()
    if not sub:
        print("error: SUB is empty; try: make token SUB=alice GROUPS=admin", file=sys.stderr)
        return 2
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    return print_local_token(BelfrySettings(), sub, groups, args.ttl, args.username)


if __name__ == "__main__":
    sys.exit(main())
