"""`make bench`: run the benchmarks and print one JSON line per figure.

`python -m bench` runs every benchmark; `python -m bench bus emulator` runs some.
Each benchmark module exposes `async def run(report: Report) -> None`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from bench.report import Report
from shared.logging import configure_logging

BENCHMARKS = (
    "bus",
    "emulator",
    "scheduler",
    "rooms",
    "rush",
    "presence",
    "chat",
    "chat_e2e",
    "chat_busy",
    "chat_channels",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", default=[])
    args = parser.parse_args(argv)
    # stdout carries only the JSON figures; warnings and errors go to stderr
    configure_logging("WARNING", "console")
    names = args.names or list(BENCHMARKS)
    report = Report(sys.stdout)
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            report.emit(name, "skipped", None, reason="not built yet")
            continue
        asyncio.run(module.run(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
