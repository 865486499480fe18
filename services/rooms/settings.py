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
    rooms_join_window_seconds: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Joins of one room are handled together (one BatchCreateAttendee of up "
        "to `BELFRY_ROOMS_JOIN_BATCH_MAX`) until none has arrived for this long, or while "
        "the room's previous batch is out.",
    )
    rooms_join_max_wait_seconds: float = Field(
        0.25,
        ge=0,
        le=5,
        description="Longest a batch of joins stays open while joins keep arriving "
        "(a class pressing join at once).",
    )
    rooms_join_batch_max: int = Field(
        100, ge=1, le=100, description="Most joins in one batch (Chime: 100; 1 turns batching off)."
    )
    rooms_join_deadline_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="How long a join may wait for the account-wide Chime budget; a join "
        "that gets no slot by then answers 503 `chime_busy` with Retry-After.",
    )
    rooms_meeting_events_queue: str | None = Field(
        None,
        description="URL or name of the SQS queue that an EventBridge rule delivers Chime's "
        "meeting events to (deploy/aws/meeting-events.yaml). Unset and not provisioned: "
        "rooms does not poll, and `attendee_count` (connected attendees) stays 0.",
    )
    rooms_meeting_events_provision: bool = Field(
        False,
        description="Create the queue (default name `<table prefix>-rooms-meeting-events`), "
        "its dead-letter queue and the EventBridge rule at start-up: for local runs "
        "against moto server; on AWS they are infrastructure.",
    )
    rooms_meeting_events_bus: str = Field(
        "default",
        description="The EventBridge bus the rule is created on when provisioning (Chime "
        "publishes to the account's default bus).",
    )
    rooms_meeting_events_pollers: int = Field(
        2, ge=1, le=16, description="Concurrent long polls of the meeting-events queue."
    )
    rooms_meeting_events_wait_seconds: int = Field(
        10,
        ge=0,
        le=20,
        description="SQS long-poll wait (WaitTimeSeconds) of each receive; at most "
        "`BELFRY_AWS_READ_TIMEOUT_SECONDS` - 2, so a quiet poll ends before the client's timeout.",
    )
    rooms_meeting_events_visibility_seconds: int = Field(
        30,
        ge=1,
        le=43200,
        description="SQS visibility timeout of a received message: how soon one whose "
        "change failed comes back.",
    )
    rooms_meeting_events_max_receives: int = Field(
        3,
        ge=1,
        le=1000,
        description="When provisioning: receives after which the redrive policy moves a "
        "message to the dead-letter queue.",
    )
    rooms_outbox_relay_seconds: float = Field(
        1.0, gt=0, description="Interval of the outbox relay sweep."
    )
