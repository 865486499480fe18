"""Figures as JSON lines, and the statistics every benchmark needs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import IO, Any


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of `samples` (pct in 0..100)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


class Report:
    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def emit(
        self, bench: str, figure: str, value: float | None, unit: str = "", **extra: Any
    ) -> None:
        line = {"bench": bench, "figure": figure, "value": value, "unit": unit, **extra}
        self._out.write(json.dumps(line, sort_keys=False) + "\n")
        self._out.flush()

    def latency(self, bench: str, figure: str, samples_s: Sequence[float], **extra: Any) -> None:
        """p50/p99 of latencies given in seconds, reported in milliseconds."""
        self.emit(bench, f"{figure}_p50", round(percentile(samples_s, 50) * 1000, 3), "ms", **extra)
        self.emit(bench, f"{figure}_p99", round(percentile(samples_s, 99) * 1000, 3), "ms", **extra)
