"""The activation loop: every tick, claim the transitions that are due.

Due rooms come from the store's keyed query (rooms whose start, or end, is at
or before now), so a tick reads only what is due, and on start-up the first
tick finds whatever fell due while no scheduler was running, however long ago:
there is no watermark to lose, and no look-back window to outlast. Each
transition is the room's conditional write (revision and phase as read) in
the same transaction as its outbox row, so of several replicas exactly one
claims it and its event is emitted exactly once; the others count a lost race.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter, Histogram

from shared.clock import Clock
from shared.events import Envelope
from shared.logging import get_logger
from shared.runtime import every

from .domain import Phase, Room, activate, activated_event, end, ended_event
from .ports import Change, ScheduleStore, StaleRooms, TickStats

log = get_logger("belfry.scheduler.activation")

TRANSITIONS = Counter(
    "belfry_scheduler_transitions_total",
    "Room transitions claimed by this replica (activated, ended).",
    ["transition"],
)
LOST_RACES = Counter(
    "belfry_scheduler_lost_races_total",
    "Transitions another writer claimed first (another replica, a PATCH, a DELETE).",
)
LAG_SECONDS = Histogram(
    "belfry_scheduler_transition_lag_seconds",
    "From a transition's due second to its commit and publish.",
    ["transition"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600),
)
ITEMS_READ = Counter(
    "belfry_scheduler_due_items_read_total",
    "Items the due-room queries read (DynamoDB ScannedCount).",
)

Transition = tuple[str, Phase, Callable[..., Room], Callable[[Room], Envelope]]
TRANSITIONS_IN_ORDER: tuple[Transition, ...] = (
    ("activated", Phase.SCHEDULED, activate, activated_event),
    # after activations, so a room that started and ended during an outage is
    # announced in order within one tick
    ("ended", Phase.ACTIVE, end, ended_event),
)


class Activator:
    def __init__(
        self,
        store: ScheduleStore,
        *,
        clock: Clock,
        tick_seconds: float = 0.25,
        due_per_tick: int = 500,
        rooms_per_transaction: int = 40,
        concurrent_transactions: int = 4,
    ) -> None:
        self.store = store
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.due_per_tick = due_per_tick
        self.rooms_per_transaction = rooms_per_transaction
        self.concurrent_transactions = concurrent_transactions
        self.ticks = 0
        self.last: TickStats | None = None
        self.last_ok = time.monotonic()

    async def tick(self) -> TickStats:
        stats = TickStats()
        more = False
        for name, phase, transition, announce in TRANSITIONS_IN_ORDER:
            now = self.clock()
            due = await self.store.due(phase, now=now, limit=self.due_per_tick)
            stats.items_read += due.items_read
            ITEMS_READ.inc(due.items_read)
            more = more or due.more
            if not due.rooms:
                continue
            changes = []
            for room in due.rooms:
                try:
                    after = transition(room, now=now)
                except ValueError as exc:  # a stale index entry; never block the rest
                    log.warning("activation.skipped", room_id=room.room_id, error=str(exc))
                    continue
                changes.append(Change(room, after, [announce(after)]))
            claimed = await self._claim_all(name, changes, now, stats)
            TRANSITIONS.labels(name).inc(len(claimed))
            if name == "activated":
                stats.activated += len(claimed)
            else:
                stats.ended += len(claimed)
            log.info(
                "rooms.transitioned", transition=name, count=len(claimed), lost=stats.lost_races
            )
        self.ticks += 1
        self.last = stats
        self.last_ok = time.monotonic()
        stats.more = more
        return stats

    async def _claim_all(
        self, name: str, changes: Sequence[Change], now: float, stats: TickStats
    ) -> list[Change]:
        size = self.rooms_per_transaction
        chunks = [changes[i : i + size] for i in range(0, len(changes), size)]
        gate = asyncio.Semaphore(self.concurrent_transactions)
        results = await asyncio.gather(
            *(self._claim(name, chunk, now, gate, stats) for chunk in chunks),
            return_exceptions=True,
        )
        claimed = [c for result in results if not isinstance(result, BaseException) for c in result]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            # what the other transactions claimed is committed and announced;
            # the failed ones are still due and go again on the next tick
            log.warning("activation.claims_failed", failed=len(failed), claimed=len(claimed))
            raise failed[0]
        return claimed

    async def _claim(
        self,
        name: str,
        chunk: Sequence[Change],
        now: float,
        gate: asyncio.Semaphore,
        stats: TickStats,
    ) -> list[Change]:
        pending = list(chunk)
        async with gate:
            while pending:
                try:
                    await self.store.save(pending, now=now)
                except StaleRooms as exc:
                    # another replica (or a PATCH/DELETE) got there first: theirs
                    stats.lost_races += len(exc.room_ids)
                    LOST_RACES.inc(len(exc.room_ids))
                    remaining = [c for c in pending if c.after.room_id not in exc.room_ids]
                    if len(remaining) == len(pending):
                        raise
                    pending = remaining
                    continue
                announced = self.clock()  # committed and published
                for change in pending:
                    due_at = change.before.due_at if change.before else announced
                    lag = max(0.0, announced - due_at)
                    stats.lags.append(lag)
                    LAG_SECONDS.labels(name).observe(lag)
                return pending
        return []

    async def check(self) -> tuple[bool, Any]:
        """Readiness: the loop completed a tick recently (DynamoDB answers)."""
        age = time.monotonic() - self.last_ok
        ok = age <= max(15.0, 20 * self.tick_seconds)
        return ok, {"last_tick_s_ago": round(age, 2), "ticks": self.ticks}

    async def run(self) -> None:
        """Tick forever (a `Component.loops` entry); a failed tick is logged and
        retried on the next one; with more due than one query read, at once."""
        log.info("activation.started", tick_s=self.tick_seconds)

        async def tick() -> bool:
            return (await self.tick()).more

        await every(self.tick_seconds, tick, name="activation.tick")
