"""Every metric a Belfry process exports is in docs/operations.md with its type and
labels (and nothing there is stale); no label collides with the Prometheus
Operator's target labels; no `_created` series, in whatever process; the HTTP
metrics follow the OpenTelemetry conventions."""

from __future__ import annotations

import ast
import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase

import services.platform.composition  # noqa: F401  (imports every service: all their metrics)
from shared import metrics
from shared.app import create_app
from shared.auth import create_verifier
from shared.auth.dependencies import CurrentUser
from shared.auth.local import mint_local_token
from shared.settings import BelfrySettings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
PREFIXES = ("belfry_", "http_server_")
# What the Prometheus Operator puts on every series of a ServiceMonitor's target: a
# metric label of one of these names would be renamed `exported_<name>`.
TARGET_LABELS = {"namespace", "service", "pod", "container", "endpoint", "job", "instance"}
_ROW = re.compile(
    r"^\| `(?P<name>(?:belfry|http_server)_[a-z_:]+)` \| (?P<type>\w+) \|(?P<labels>[^|]*)\|"
)


def _exposed_name(collector: MetricWrapperBase) -> str:
    name: str = collector._name  # prometheus_client keeps the family name here
    return f"{name}_total" if collector._type == "counter" else name


def belfry_collectors() -> dict[str, MetricWrapperBase]:
    """Belfry's collectors in the default registry, by the name they are scraped as."""
    found: dict[str, MetricWrapperBase] = {}
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase) and collector._name.startswith(PREFIXES):
            found[_exposed_name(collector)] = collector
    return found


def documented() -> dict[str, tuple[str, set[str]]]:
    """The rows of docs/operations.md's metric tables: name -> (type, labels)."""
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        labels = set(re.findall(r"`([a-z_]+)`", match["labels"]))
        assert match["name"] not in rows, f"{match['name']} is documented twice"
        rows[match["name"]] = (match["type"], labels)
    return rows


def test_the_registry_has_belfry_metrics() -> None:
    found = belfry_collectors()
    assert "http_server_request_duration_seconds" in found
    assert "belfry_bus_consumed_total" in found
    assert len(found) > 30


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    rows = documented()
    found = belfry_collectors()
    assert sorted(set(found) - set(rows)) == [], "metrics missing from docs/operations.md"
    assert sorted(set(rows) - set(found)) == [], "docs/operations.md lists metrics that are gone"
    for name, collector in found.items():
        kind, labels = rows[name]
        assert kind == collector._type, f"{name}: documented as a {kind}"
        assert labels == set(collector._labelnames), f"{name}: documented labels {labels}"


def test_no_label_is_one_the_operator_sets_on_the_target() -> None:
    for name, collector in belfry_collectors().items():
        clash = TARGET_LABELS & set(collector._labelnames)
        assert not clash, f"{name} has a label the Prometheus Operator would rename: {clash}"


def test_the_shared_metrics_label_their_service_component() -> None:
    for collector in (
        metrics.EVENTS_PUBLISHED,
        metrics.EVENTS_CONSUMED,
        metrics.OUTBOX_PENDING,
        metrics.REQUEST_DURATION,
        metrics.ACTIVE_REQUESTS,
    ):
        assert collector._labelnames[0] == "component"


def test_the_http_metrics_follow_the_opentelemetry_conventions() -> None:
    duration = metrics.REQUEST_DURATION
    assert duration._type == "histogram"
    assert duration._name == "http_server_request_duration_seconds"
    assert set(duration._labelnames) == {
        "component",
        "http_request_method",
        "http_route",
        "http_response_status_code",
    }
    assert metrics.ACTIVE_REQUESTS._name == "http_server_active_requests"
    assert metrics.ACTIVE_REQUESTS._type == "gauge"
    names = set(belfry_collectors())
    assert not {n for n in names if n.startswith("belfry_http_")}, "the old names are gone"


# A `<name>_created` sample (a family named `…_created_total`, such as
# belfry_rooms_meetings_created_total, is a counter like any other).
_CREATED_SAMPLE = re.compile(r"^(# (HELP|TYPE) )?[a-zA-Z_:][a-zA-Z0-9_:]*_created[{ ]")


def _created(text: str) -> list[str]:
    return [line for line in text.splitlines() if _CREATED_SAMPLE.match(line)]


def test_the_created_check_finds_created_series() -> None:
    enabled = "\n".join(
        [
            "# TYPE belfry_rooms_meetings_created_total counter",
            'belfry_rooms_meetings_created_total{reason="first_join"} 1.0',
            'belfry_rooms_meetings_created_created{reason="first_join"} 1.7e9',
            "# TYPE belfry_chat_mentions_created gauge",
            "belfry_chat_mentions_created 1.7e9",
        ]
    )
    assert _created(enabled) == enabled.splitlines()[2:]


def test_no_created_series_in_this_process() -> None:
    metrics.EVENTS_PUBLISHED.labels("contract", "RoomScheduled").inc()
    metrics.HANDLER_SECONDS.labels("contract", "q", "RoomScheduled").observe(0.01)
    text = generate_latest().decode()
    # counters and histograms with samples are there: they would carry a _created
    assert 'belfry_bus_published_total{component="contract",event_type="RoomScheduled"}' in text
    assert "belfry_chat_mentions_total " in text
    assert "belfry_rooms_join_batch_size_count " in text
    assert _created(text) == []


def _modules_with_collectors() -> Iterator[tuple[str, ast.Module]]:
    """Every module that makes a collector (`NAME = Counter(...)` and the like)."""
    pattern = re.compile(r"^\w+ = (Counter|Gauge|Histogram|Summary)\(", re.MULTILINE)
    for package in ("shared", "services", "emulators"):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            if pattern.search(source):
                yield ".".join(path.relative_to(ROOT).with_suffix("").parts), ast.parse(source)


def test_every_collector_is_made_with_the_types_of_shared_metrics() -> None:
    """So that a process with any Belfry metric has imported shared.metrics, which
    turns the `_created` series off, before it made one (ruff's TID251 says so too)."""
    modules = dict(_modules_with_collectors())
    assert {"shared.metrics", "services.notifier.live", "services.chat.metrics"} <= set(modules)
    for name, tree in modules.items():
        if name == "shared.metrics":
            continue
        imported = {
            (node.module, alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert not {i for i in imported if i[0] == "prometheus_client"}, name
        assert {i[1] for i in imported if i[0] == "shared.metrics"}, name


def test_no_created_series_in_a_process_that_imports_one_service_module() -> None:
    """A fresh interpreter that imports only a leaf module with metrics (as a tool
    or a one-service entry point might) exports no `_created` series either."""
    script = (
        "import sys, prometheus_client\n"
        "import services.chat.metrics\n"
        "sys.stdout.write(prometheus_client.generate_latest().decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "belfry_chat_mentions_total 0.0" in done.stdout
    assert _created(done.stdout) == []


# --- an app's /metrics ------------------------------------------------------------


async def test_an_app_scrape_has_the_http_metrics_and_no_created_series() -> None:
    router = APIRouter()
    entered, release = asyncio.Event(), asyncio.Event()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, Any]:
        if thing_id == "slow":
            entered.set()
            await release.wait()
        return {"id": thing_id}

    app = create_app(title="Contract", service="contract-app", routers=[router])
    transport = httpx.ASGITransport(app=app)
    active = {"component": "contract-app", "http_request_method": "GET"}
    count = {
        "component": "contract-app",
        "http_request_method": "GET",
        "http_route": "/things/{thing_id}",
        "http_response_status_code": "200",
    }

    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    async with httpx.AsyncClient(transport=transport, base_url="http://belfry.test") as client:
        assert (await client.get("/things/a")).status_code == 200
        assert (await client.get("/things/b")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        slow = asyncio.create_task(client.get("/things/slow"))
        await asyncio.wait_for(entered.wait(), 10)
        assert sample("http_server_active_requests", active) == 1.0
        release.set()
        assert (await slow).status_code == 200
        assert sample("http_server_active_requests", active) == 0.0
        await client.get("/healthz")
        await client.get("/readyz")
        scraped = (await client.get("/metrics")).text

    assert sample("http_server_request_duration_seconds_count", count) == 3.0
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(count.items()))
    assert f"http_server_request_duration_seconds_count{{{labels}}} 3.0" in scraped
    assert 'http_route="unmatched",' in scraped
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert f'http_route="{probe}"' not in scraped
    assert "belfry_http_" not in scraped
    # a label named `service` (not `aws_service`, say): the Operator would rename it
    assert re.findall(r'[{,]service="', scraped) == []
    assert _created(scraped) == []


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_methods_outside_the_standard_ones_are_other(method: str) -> None:
    router = APIRouter()

    @router.api_route("/any", methods=[method])
    async def standard() -> dict[str, str]:
        return {}

    @router.api_route("/any", methods=["BREW"])
    async def brew() -> dict[str, str]:
        return {}

    app = create_app(title="Contract", service="contract-methods", routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://belfry.test") as client:
        await client.request(method, "/any")
        await client.request("BREW", "/any")

    def count(m: str) -> float:
        labels = {
            "component": "contract-methods",
            "http_request_method": m,
            "http_route": "/any",
            "http_response_status_code": "200",
        }
        return REGISTRY.get_sample_value("http_server_request_duration_seconds_count", labels) or 0

    assert count(method) >= 1
    assert count("_OTHER") >= 1
    assert count("BREW") == 0


async def test_a_request_the_edge_refuses_is_labelled_with_its_route() -> None:
    """401 (no token) and 413 (body too large) are answered before routing: the
    route template still comes from the app's operations, not `unmatched`."""
    router = APIRouter()

    @router.post("/notes/{note_id}")
    async def note(note_id: str, me: CurrentUser) -> dict[str, str]:
        return {"id": note_id, "by": me.user_id}

    settings = BelfrySettings(http_max_body_bytes=64)
    app = create_app(title="Contract", service="contract-edge", routers=[router])
    app.state.settings = settings
    app.state.verifier = create_verifier(settings)
    token = mint_local_token(settings, sub="u-1", groups=["customer"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://belfry.test") as client:
        refused = await client.post("/notes/n1", json={})
        assert refused.status_code == 401
        large = await client.post(
            "/notes/n1", content=b"x" * 1000, headers={"Authorization": f"Bearer {token}"}
        )
        assert large.status_code == 413
        ok = await client.post("/notes/n1", json={}, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200

    def count(status: str, route: str = "/notes/{note_id}") -> float:
        labels = {
            "component": "contract-edge",
            "http_request_method": "POST",
            "http_route": route,
            "http_response_status_code": status,
        }
        return REGISTRY.get_sample_value("http_server_request_duration_seconds_count", labels) or 0

    assert (count("401"), count("413"), count("200")) == (1, 1, 1)
    assert count("401", "unmatched") == 0
