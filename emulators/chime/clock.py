"""Clocks: the emulator reads time only through one of these, so tests can move it."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class AdjustableClock(Clock, Protocol):
    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        ...

    def reset(self) -> None:
        """Undo every `advance`."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class OffsetClock:
    """A base clock plus an offset that the control API moves forward.

    Time keeps flowing (rate limits refill, timestamps differ), and `advance`
    jumps ahead, e.g. past a meeting's idle timeout.
    """

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = base or SystemClock()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._base.now() + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


class ManualClock:
    """A clock that stands still until told to move (for unit tests)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._start = start
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._now += seconds
        return self._now

    def reset(self) -> None:
        self._now = self._start
