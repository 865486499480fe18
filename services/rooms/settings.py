"""Settings of the rooms service (env `BELFRY_ROOMS_<FIELD>`)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BelfrySettings


class RoomsSettings(BelfrySettings):
    rooms_meeting_wait_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="How long a join waits for another join that is creating the room's "
        "Chime meeting before answering 503.",
    )
    rooms_meeting_lease_seconds: int = Field(
        20,
        ge=2,
        le=300,
        description="Lease a join holds on a room while it creates the Chime meeting; "
        "another join takes over after it lapses (a crashed replica).",
    )
    rooms_retention_seconds: int = Field(
        7 * 86400,
        ge=60,
        description="How long rooms' rows outlive a room's end (TTL `expires_at`).",
    )
    rooms_outbox_relay_seconds: float = Field(
        1.0, gt=0, description="Interval of the outbox relay sweep."
    )
