"""Prometheus metrics shared by every service (names `belfry_<area>_<thing>_<unit>`).

Labels stay low-cardinality: event type, queue, outcome; never a user or room id.
The collectors live in the default registry; one process may run several
services (`make run`), so the `service` label tells them apart.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

EVENTS_PUBLISHED = Counter(
    "belfry_bus_published_total", "Events confirmed by the broker.", ["service", "event_type"]
)
PUBLISH_FAILURES = Counter(
    "belfry_bus_publish_failures_total",
    "Publishes that failed (nack, returned as unroutable, timeout, connection).",
    ["service", "event_type", "reason"],
)
EVENTS_CONSUMED = Counter(
    "belfry_bus_consumed_total",
    "Deliveries handled, by outcome (ok, duplicate, retried, dead_lettered).",
    ["service", "queue", "event_type", "outcome"],
)
EVENTS_RETRIED = Counter(
    "belfry_bus_retried_total",
    "Failed deliveries sent to a retry delay.",
    ["service", "queue", "event_type"],
)
EVENTS_DEAD_LETTERED = Counter(
    "belfry_bus_dead_lettered_total",
    "Deliveries sent to the dead-letter queue, by reason.",
    ["service", "queue", "event_type", "reason"],
)
HANDLER_SECONDS = Histogram(
    "belfry_bus_handler_seconds",
    "Handler latency, from delivery to ack.",
    ["service", "queue", "event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PENDING = Gauge(
    "belfry_outbox_pending_rows", "Outbox rows seen pending by the last relay sweep.", ["service"]
)
HTTP_REQUESTS = Counter(
    "belfry_http_requests_total",
    "HTTP requests by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "belfry_http_request_seconds",
    "HTTP request latency by route template.",
    ["service", "method", "route"],
)


def render_latest() -> tuple[bytes, str]:
    """The text exposition of the default registry and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
