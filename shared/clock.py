"""Time as Belfry passes it around: a clock to inject, and one way to write UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Seconds since the epoch (`time.time`); tests pass a clock they can move."""


def utc_iso(value: datetime | float) -> str:
    """ISO-8601 in UTC with a `Z` (`2026-11-21T09:00:00Z`), from a datetime or
    epoch seconds."""
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
