"""chat's own Prometheus metrics (low-cardinality labels only)."""

from __future__ import annotations

from shared.metrics import Counter, Histogram

MESSAGES_POSTED = Counter(
    "belfry_chat_messages_posted_total", "Messages relayed to Chime and indexed.", ["channel_kind"]
)
MENTIONS = Counter("belfry_chat_mentions_total", "People mentioned in posted messages.")
POSTS_REFUSED = Counter(
    "belfry_chat_posts_refused_total",
    "Posts refused before any Chime call, by error code.",
    ["code"],
)
MESSAGES_WITHDRAWN = Counter(
    "belfry_chat_messages_withdrawn_total",
    "Messages deleted from Chime again because their index row could not be written.",
)
ATTACHMENT_BYTES = Histogram(
    "belfry_chat_attachment_bytes",
    "Sizes of accepted attachments.",
    ["upload"],
    buckets=(1e3, 1e4, 1e5, 1e6, 5e6, 1e7, 2.5e7, 1e8),
)
CHIME_SECONDS = Histogram(
    "belfry_chat_chime_call_seconds",
    "Latency of chat's Chime SDK calls.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MEMBERSHIPS_ENDED = Counter(
    "belfry_chat_memberships_ended_total",
    "Channel memberships chat ended (ChannelLeft), by reason.",
    ["reason"],
)
