"""Prometheus metrics shared by every service, and the collector types every
Belfry module defines its own metrics with (docs/operations.md lists them all).

Names: `belfry_<area>_<thing>_<unit>`, except the HTTP server metrics, which
follow the OpenTelemetry HTTP semantic conventions as Prometheus spells them
(`http_server_request_duration_seconds`, `http_server_active_requests`), so
stock dashboards work unchanged.

Labels stay low-cardinality: event type, queue, outcome, route template; never
a user or room id. The collectors live in the default registry; one process may
run several services (`make run`), so the `component` label (the service name)
tells them apart. It is not called `service`: the Prometheus Operator gives a
scraped target a `service` label of its own (the Kubernetes Service), which
would rename ours to `exported_service`.

No `<name>_created` series: they double the series count of every counter and
histogram and nothing here reads them. The switch is process-wide and read when
a scrape is rendered; it is thrown when this module is imported, and every
Belfry collector is made with the types below, so every process that has a
Belfry metric has imported this module first.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

__all__ = [
    "ACTIVE_REQUESTS",
    "EVENTS_CONSUMED",
    "EVENTS_DEAD_LETTERED",
    "EVENTS_PUBLISHED",
    "EVENTS_RETRIED",
    "HANDLER_SECONDS",
    "HTTP_DURATION_BUCKETS",
    "OUTBOX_PENDING",
    "PUBLISH_FAILURES",
    "REQUEST_DURATION",
    "Counter",
    "Gauge",
    "Histogram",
    "render_latest",
]

EVENTS_PUBLISHED = Counter(
    "belfry_bus_published_total", "Events confirmed by the broker.", ["component", "event_type"]
)
PUBLISH_FAILURES = Counter(
    "belfry_bus_publish_failures_total",
    "Publishes that failed (nack, returned as unroutable, timeout, connection).",
    ["component", "event_type", "reason"],
)
EVENTS_CONSUMED = Counter(
    "belfry_bus_consumed_total",
    "Deliveries handled, by outcome (ok, duplicate, retried, dead_lettered).",
    ["component", "queue", "event_type", "outcome"],
)
EVENTS_RETRIED = Counter(
    "belfry_bus_retried_total",
    "Failed deliveries sent to a retry delay.",
    ["component", "queue", "event_type"],
)
EVENTS_DEAD_LETTERED = Counter(
    "belfry_bus_dead_lettered_total",
    "Deliveries sent to the dead-letter queue, by reason.",
    ["component", "queue", "event_type", "reason"],
)
HANDLER_SECONDS = Histogram(
    "belfry_bus_handler_seconds",
    "Handler latency, from delivery to ack.",
    ["component", "queue", "event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PENDING = Gauge(
    "belfry_outbox_pending_rows",
    "Outbox rows seen pending by the last relay sweep.",
    ["component"],
)

# The OpenTelemetry semantic conventions' advice for http.server.request.duration.
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP server requests, by route template and status (its _count counts them).",
    ["component", "http_request_method", "http_route", "http_response_status_code"],
    buckets=HTTP_DURATION_BUCKETS,
)
ACTIVE_REQUESTS = Gauge(
    "http_server_active_requests",
    "HTTP server requests in progress.",
    ["component", "http_request_method"],
)


def render_latest() -> tuple[bytes, str]:
    """The text exposition of the default registry and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
