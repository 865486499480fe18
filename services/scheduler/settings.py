"""Settings of the scheduler service (env `BELFRY_SCHEDULER_<FIELD>`)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BelfrySettings


class SchedulerSettings(BelfrySettings):
    scheduler_tick_seconds: float = Field(
        0.25,
        gt=0,
        le=60,
        description="Interval of the activation loop: RoomActivated arrives at most about "
        "this long (plus one DynamoDB round trip and a publish) after `start_at`.",
    )
    scheduler_start_grace_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description="How far in the past a new or re-timed start may lie (clock skew, "
        "slow clients); such a room activates at once.",
    )
    scheduler_max_lead_days: int = Field(
        366, ge=1, le=3650, description="How far ahead a room may be scheduled."
    )
    scheduler_retention_seconds: int = Field(
        30 * 86400,
        ge=0,
        description="How long a room stays readable after its end: its TTL attribute "
        "`expires_at` is `end_at` plus this.",
    )
    scheduler_page_size: int = Field(
        50, ge=1, le=100, description="Default page size of `GET /schedule` (max 100)."
    )
    scheduler_due_per_tick: int = Field(
        500,
        ge=1,
        le=10000,
        description="Due rooms one query reads (a page); with more due the loop goes on "
        "at once instead of waiting a tick.",
    )
    scheduler_rooms_per_transaction: int = Field(
        40,
        ge=1,
        le=99,
        description="Transitions claimed in one TransactWriteItems (the rooms' conditional "
        "updates and one outbox row with their events).",
    )
    scheduler_concurrent_transactions: int = Field(
        4, ge=1, le=32, description="Transactions one tick runs at once."
    )
    scheduler_lease_seconds: float = Field(
        5.0,
        ge=1,
        le=120,
        description="The activation lease: one replica runs the activation loop, renewing "
        "this lease; if it stops, another takes over within this long.",
    )
    scheduler_lookahead_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        description="Transitions due within this long are read ahead, so that at their "
        "second only the claims remain (a 09:00 start of many rooms).",
    )
    scheduler_outbox_relay_seconds: float = Field(
        1.0, gt=0, description="Interval of the outbox relay sweep."
    )
