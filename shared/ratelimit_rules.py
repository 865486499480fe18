"""The rate-limit settings' small language (`BELFRY_RATE_LIMIT_*`), parsed and
checked where the settings are read, so that a typo stops the process at
start-up with a message naming the variable and the entry.

    rate   := "off" | NUMBER "/" UNIT [ "burst" INTEGER ]      e.g. "10/s burst 20"
    UNIT   := s | sec | second | m | min | minute | h | hour
    routes := entry { ";" entry }                              e.g. "POST /schedule=2/s burst 10"
    entry  := METHOD " " PATH "=" rate                         PATH: the route template

Without `burst` a rate allows bursts of one second's worth (at least 1).
This module imports nothing of Belfry's: `shared.settings` uses it.
"""

from __future__ import annotations

import math
import re

Limit = tuple[float, int]
"""Requests per second and burst; None where a rate is `off`."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(
    r"^\s*(?P<count>\d+(?:\.\d+)?)\s*/\s*(?P<unit>[a-z]+)\s*(?:burst\s+(?P<burst>\d+)\s*)?$",
    re.IGNORECASE,
)
_SHAPE = "a rate looks like '10/s burst 20', '30/min' or 'off'"
MAX_PER_SECOND = 100_000.0
MAX_BURST = 1_000_000


class RateSyntaxError(ValueError):
    """A rate-limit setting that does not parse; the message says where and how."""


def parse_rate(text: str) -> Limit | None:
    """`"10/s burst 20"` -> (10.0, 20); `"off"` -> None."""
    if text.strip().lower() == "off":
        return None
    match = _RATE.match(text)
    if match is None:
        raise RateSyntaxError(f"{text!r}: {_SHAPE}")
    unit = _UNITS.get(match["unit"].lower())
    if unit is None:
        raise RateSyntaxError(f"{text!r}: the unit is one of s, min, h ({_SHAPE})")
    per_second = float(match["count"]) / unit
    if not 0 < per_second <= MAX_PER_SECOND:
        raise RateSyntaxError(
            f"{text!r}: the rate must be above 0 and at most {MAX_PER_SECOND:g}/s"
        )
    burst = int(match["burst"]) if match["burst"] else max(1, math.ceil(per_second))
    if not 1 <= burst <= MAX_BURST:
        raise RateSyntaxError(f"{text!r}: the burst must be 1 to {MAX_BURST}")
    return per_second, burst


def parse_routes(text: str) -> dict[tuple[str, str], Limit | None]:
    """`"POST /schedule=2/s burst 10; GET /rooms=off"` ->
    {("POST", "/schedule"): (2.0, 10), ("GET", "/rooms"): None}."""
    routes: dict[tuple[str, str], Limit | None] = {}
    for raw in re.split(r"[;\n]", text):
        entry = raw.strip()
        if not entry:
            continue
        where, equals, rate = entry.partition("=")
        parts = where.split()
        if not equals or len(parts) != 2:
            raise RateSyntaxError(
                f"{entry!r}: an entry is 'METHOD /route/{{param}}=RATE', "
                "e.g. 'POST /schedule=2/s burst 10'"
            )
        method, path = parts[0].upper(), parts[1]
        if method not in METHODS:
            raise RateSyntaxError(f"{entry!r}: {parts[0]!r} is not one of {sorted(METHODS)}")
        if not path.startswith("/"):
            raise RateSyntaxError(f"{entry!r}: the route template starts with '/'")
        if (method, path) in routes:
            raise RateSyntaxError(f"{entry!r}: {method} {path} is given twice")
        try:
            routes[method, path] = parse_rate(rate)
        except RateSyntaxError as exc:
            raise RateSyntaxError(f"{entry!r}: {exc}") from None
    return routes


def format_rate(limit: Limit | None) -> str:
    """The inverse of `parse_rate` (for messages and documentation)."""
    if limit is None:
        return "off"
    per_second, burst = limit
    return f"{per_second:g}/s burst {burst}"
