"""Settings of the notifier (env `BELFRY_NOTIFIER_*`, on top of every process's)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BelfrySettings


class NotifierSettings(BelfrySettings):
    notifier_service_user_id: str = Field(
        "belfry-notifier-service",
        min_length=1,
        max_length=64,
        description=(
            "AppInstanceUser id the notifier creates in each AppInstance it meets in a "
            "channel ARN and makes an AppInstanceAdmin: the bearer of its lazy joins."
        ),
    )
    notifier_app_instance_arn: str | None = Field(
        None,
        description=(
            "The AppInstance of the chat channels; when set, the notifier prepares its "
            "service user there at start-up (otherwise on the first lazy join, from the "
            "channel ARN)."
        ),
    )
    notifier_join_window_seconds: float = Field(
        0.05,
        ge=0,
        le=5,
        description=(
            "How long lazy joins due on one channel wait for each other, so that one "
            "BatchCreateChannelMembership (up to 100 members) adds them all."
        ),
    )
    notifier_members_cache_seconds: float = Field(
        10.0,
        ge=0,
        le=60,
        description=(
            "How long a replica reuses a channel's member list for new messages (joins "
            "and leaves on the fan-out queue are applied to it at once; this bounds how "
            "long a lost fan-out delivery can leave it stale)."
        ),
    )
    notifier_feed_retention_seconds: int = Field(
        7 * 86400,
        ge=60,
        description="How long a user's feed rows (what WebSocket clients resume from) are kept.",
    )
    notifier_replay_limit: int = Field(
        1000,
        ge=1,
        description=(
            "Most frames a reconnecting WebSocket may ask to replay (`?since=`); a cursor "
            "further behind is closed with 4410 (refetch, then connect without `since`)."
        ),
    )
    notifier_ws_send_buffer: int = Field(
        256,
        ge=1,
        description="Frames queued for one WebSocket; a client that lets it fill is closed 4429.",
    )
    notifier_ws_send_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest wait for one frame to be written to a client before closing it 4429.",
    )
    notifier_ws_poll_seconds: float = Field(
        10.0,
        gt=0,
        description="Each WebSocket rereads its feed at least this often (a safety net only).",
    )
    notifier_room_frame_interval_seconds: float = Field(
        0.25,
        ge=0,
        le=10,
        description=(
            "Per room, the shortest time between two `room.updated` frames: the first "
            "change after a quiet period is sent at once, later ones within this time "
            "are merged and the latest state is sent when it ends."
        ),
    )
    notifier_ws_max_per_user: int = Field(
        10,
        ge=1,
        le=1000,
        description=(
            "Open WebSockets one user may hold across every replica; the next one is "
            "closed with 4429 `too_many_sessions`."
        ),
    )
    notifier_ws_lease_seconds: float = Field(
        90.0,
        ge=3,
        le=3600,
        description=(
            "A WebSocket's place in its user's count is a lease renewed every third of "
            "this while it is open (one conditional write per socket and period); a "
            "crashed replica's sockets stop counting after it."
        ),
    )
    notifier_typing_interval_seconds: float = Field(
        2.5,
        ge=0,
        le=60,
        description=(
            "Per user and channel, the shortest time between two relayed typing "
            "indicators (a WebSocket frame `typing`); the ones in between are dropped. "
            "A user relays at most 10 per this time over all their channels."
        ),
    )
