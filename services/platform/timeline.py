"""The demo's output: one line per step, `[ 3/18]  +2.4s  what happened ... ok (detail)`."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO


class DemoFailed(Exception):
    """A step's outcome was not what the story needs; the message says what and why."""


class Step:
    def __init__(self) -> None:
        self.outcome = ""
        self.skipped = False

    def done(self, outcome: str) -> None:
        self.outcome = outcome

    def skip(self, why: str) -> None:
        self.skipped = True
        self.outcome = why


class Timeline:
    def __init__(self, total: int, out: TextIO | None = None) -> None:
        self.total = total
        self.number = 0
        self.out = out or sys.stdout
        self.started = time.monotonic()
        self.failed_step: str | None = None
        self.skipped = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def section(self, title: str) -> None:
        print(f"\n{title}", file=self.out, flush=True)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[Step]:
        """Print the step, run it, print its outcome; a failure names the step."""
        self.number += 1
        width = len(str(self.total))
        prefix = f"[{self.number:>{width}}/{self.total}] {self.elapsed():6.1f}s  {what}"
        print(f"{prefix} ...", end="", file=self.out, flush=True)
        step = Step()
        try:
            yield step
        except Exception as exc:
            print(" FAILED", file=self.out, flush=True)
            self.failed_step = f"[{self.number}/{self.total}] {what}"
            if isinstance(exc, DemoFailed):
                raise
            raise DemoFailed(f"{type(exc).__name__}: {exc}") from exc
        self.skipped += step.skipped
        status = "skipped" if step.skipped else "ok"
        detail = f"  ({step.outcome})" if step.outcome else ""
        print(f" {status}{detail}", file=self.out, flush=True)
