"""Request-rate limits, injected faults and call counters, per operation name."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from emulators.chime.clock import Clock

FAULT_STATUSES = (500, 503)


@dataclass(frozen=True)
class Rate:
    """A token bucket: `rate` requests per second, bursts of up to `burst`."""

    rate: float
    burst: float

    @classmethod
    def parse(cls, raw: Any, where: str) -> Rate:
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object with rate and burst")
        rate, burst = raw.get("rate"), raw.get("burst", raw.get("rate"))
        if not isinstance(rate, int | float) or not isinstance(burst, int | float):
            raise ValueError(f"{where}.rate and {where}.burst must be numbers")
        if rate <= 0 or burst < 1:
            raise ValueError(f"{where} needs rate > 0 and burst >= 1")
        return cls(float(rate), float(burst))

    def as_json(self) -> dict[str, float]:
        return {"rate": self.rate, "burst": self.burst}


class _Bucket:
    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = rate.burst
        self.stamp = now

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(self.rate.burst, self.tokens + elapsed * self.rate.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    """Chime's per-API, per-account request rates (off until configured).

    Each operation gets its own bucket, like Chime's "10 requests/s with a
    burst of 20 per API".
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.default: Rate | None = None
        self.operations: dict[str, Rate] = {}
        self._buckets: dict[str, _Bucket] = {}

    def configure(self, default: Rate | None, operations: dict[str, Rate]) -> None:
        self.default, self.operations = default, dict(operations)
        self._buckets.clear()

    def clear(self) -> None:
        self.configure(None, {})

    def allow(self, operation: str) -> bool:
        rate = self.operations.get(operation, self.default)
        if rate is None:
            return True
        now = self._clock.now()
        bucket = self._buckets.get(operation)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[operation] = _Bucket(rate, now)
        return bucket.take(now)

    def as_json(self) -> dict[str, Any]:
        return {
            "default": self.default.as_json() if self.default else None,
            "operations": {name: rate.as_json() for name, rate in self.operations.items()},
        }


@dataclass(frozen=True)
class Fault:
    share: float
    statuses: tuple[int, ...]

    @classmethod
    def parse(cls, raw: Any, where: str) -> Fault:
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object with share and statuses")
        share = raw.get("share")
        statuses = raw.get("statuses", list(FAULT_STATUSES))
        if not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ValueError(f"{where}.share must be a number in 0..1")
        if (
            not isinstance(statuses, list)
            or not statuses
            or any(s not in FAULT_STATUSES for s in statuses)
        ):
            raise ValueError(f"{where}.statuses must be a non-empty list of 500 and/or 503")
        return cls(float(share), tuple(int(s) for s in statuses))

    def as_json(self) -> dict[str, Any]:
        return {"share": self.share, "statuses": list(self.statuses)}


class FaultInjector:
    """Answers a share of requests with 500/503, reproducibly for a given seed.

    Every operation draws from its own generator (seeded with the seed and the
    operation name), so the faults one operation sees do not depend on how
    calls to other operations interleave with it.
    """

    def __init__(self) -> None:
        self.seed: int | None = None
        self.default: Fault | None = None
        self.operations: dict[str, Fault] = {}
        self._generators: dict[str, random.Random] = {}

    def configure(self, seed: int | None, default: Fault | None, ops: dict[str, Fault]) -> None:
        self.seed, self.default, self.operations = seed, default, dict(ops)
        self._generators.clear()

    def clear(self) -> None:
        self.configure(None, None, {})

    def draw(self, operation: str) -> int | None:
        """The status to fail this call with, or None to let it through."""
        fault = self.operations.get(operation, self.default)
        if fault is None or fault.share <= 0:
            return None
        generator = self._generators.get(operation)
        if generator is None:
            seed = f"{self.seed}:{operation}" if self.seed is not None else None
            generator = self._generators[operation] = random.Random(seed)
        if generator.random() >= fault.share:
            return None
        return fault.statuses[generator.randrange(len(fault.statuses))]

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "default": self.default.as_json() if self.default else None,
            "operations": {name: fault.as_json() for name, fault in self.operations.items()},
        }


class CallCounters:
    """How each operation's calls ended, for tests that prove "exactly one"."""

    OUTCOMES = ("calls", "succeeded", "failed", "throttled", "faulted")

    def __init__(self) -> None:
        self._counts: dict[str, Counter[str]] = {name: Counter() for name in self.OUTCOMES}

    def record(self, outcome: str, operation: str) -> None:
        self._counts[outcome][operation] += 1

    def reset(self) -> None:
        for counter in self._counts.values():
            counter.clear()

    def as_json(self) -> dict[str, dict[str, int]]:
        return {name: dict(counter) for name, counter in self._counts.items()}
