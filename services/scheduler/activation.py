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
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from shared.clock import Clock
from shared.events import Envelope
from shared.logging import get_logger
from shared.metrics import Counter, Histogram
from shared.runtime import every

from .domain import Phase, Room, activate, activated_event, end, ended_event
from .ports import Change, DueRooms, ScheduleStore, StaleRooms, TickStats

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
ORDER: tuple[Transition, ...] = (
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
        owner: str | None = None,
        lease_seconds: float = 5.0,
        lookahead_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.due_per_tick = due_per_tick
        self.rooms_per_transaction = rooms_per_transaction
        self.concurrent_transactions = concurrent_transactions
        self.owner = owner or uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.lookahead_seconds = lookahead_seconds
        self.ticks = 0
        self.last: TickStats | None = None
        self.last_ok = time.monotonic()
        self.leading = False
        self._lead_until = 0.0
        # Rooms whose transition falls due within the lookahead, read ahead of
        # time, so that the due second costs only the claims.
        self._soon: dict[Phase, dict[str, Room]] = {phase: {} for _, phase, _, _ in ORDER}
        self._read_ahead_until = 0.0

    async def tick(self) -> TickStats:
        stats = TickStats()
        for name, phase, transition, announce in ORDER:
            now = self.clock()
            ready = [r for r in self._soon[phase].values() if r.due_at <= now]
            for room in ready:
                del self._soon[phase][room.room_id]
            due = DueRooms([], 0)
            if not ready:
                due = await self.store.due(phase, now=now, limit=self.due_per_tick)
                stats.items_read += due.items_read
                ITEMS_READ.inc(due.items_read)
            # read ahead: the due query runs on the next tick, for what it missed
            stats.more = stats.more or due.more or bool(ready)
            rooms = ready or due.rooms
            if not rooms:
                continue
            changes = []
            for room in rooms:
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
        return stats

    async def read_ahead(self) -> int:
        """Rooms due within the lookahead, into memory (every third of it)."""
        now = self.clock()
        if now + self.lookahead_seconds * 2 / 3 < self._read_ahead_until:
            return 0
        until = now + self.lookahead_seconds
        found = 0
        for _, phase, _, _ in ORDER:
            soon = await self.store.upcoming(
                phase, after=now, until=until, limit=self.due_per_tick * 10
            )
            self._soon[phase].update((r.room_id, r) for r in soon.rooms)
            found += len(soon.rooms)
        self._read_ahead_until = until
        return found

    def seconds_to_next(self) -> float:
        """Until the next transition read ahead is due, at most one tick."""
        now = self.clock()
        dues = [r.due_at for rooms in self._soon.values() for r in rooms.values()]
        return max(0.0, min([self.tick_seconds, *(d - now for d in dues)]))

    async def lead(self) -> bool:
        """Hold the activation lease (taken or renewed in its last two thirds):
        one replica claims while the others stand by, so that they do not read
        and race for the same rooms. Claims stay conditional, so two leaders
        for a moment (a lease that lapsed under a slow leader) are still safe."""
        now = self.clock()
        if self._lead_until - now > self.lease_seconds * 2 / 3:
            return True
        leading = await self.store.lead(self.owner, now=now, seconds=self.lease_seconds)
        self._lead_until = now + self.lease_seconds if leading else 0.0
        if leading != self.leading:
            log.info("activation.leadership", owner=self.owner, leading=leading)
        self.leading = leading
        self.last_ok = time.monotonic()
        return leading

    async def step(self) -> bool | float:
        """One round of the loop: lead, read ahead, claim what is due. Returns
        True to go again at once, else the seconds until the next round."""
        if not await self.lead():
            return self.lease_seconds / 3
        await self.read_ahead()
        if (await self.tick()).more:
            return True
        return self.seconds_to_next()

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
        """Round after round (a `Component.loops` entry); a failed round is
        logged and retried a tick later."""
        log.info("activation.started", tick_s=self.tick_seconds, owner=self.owner)
        await every(self.tick_seconds, self.step, name="activation.tick")
