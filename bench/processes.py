"""The processes a benchmark runs beside itself: moto, the Chime emulator, a service.

Each runs as `python -m <module>` on a free port, is waited for on a readiness
URL (bounded) and stopped at the end; `cpu_seconds` tells a server's cost from
the client's. `scratch_topology` deletes a run's queues and exchanges from the
broker at the end, so that benchmarks leave nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx

from shared.bus.amqp import AmqpBus
from shared.topology import durable_bindings

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), 0.0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{url} did not become ready")
        time.sleep(0.1)


@contextlib.contextmanager
def running(
    args: list[str], ready: str, env: dict[str, str] | None = None, log: str | None = None
) -> Iterator[int]:
    """`python -m *args` until the block ends; yields its pid once `ready` answers 200."""
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(open(log, "wb")) if log else subprocess.DEVNULL
        process = subprocess.Popen(
            [sys.executable, "-m", *args],
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=output,
        )
        try:
            _wait_ready(ready, process)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def moto() -> Iterator[tuple[str, int]]:
    """moto server (`emulators.aws`): its URL and pid."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(["emulators.aws", "--port", str(port)], f"{url}/moto-api/") as pid:
        yield url, pid


@contextlib.contextmanager
def chime_emulator() -> Iterator[tuple[str, int]]:
    """The Chime SDK emulator: its URL and pid."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["emulators.chime", "--port", str(port), "--log-level", "warning"]
    with running(args, f"{url}/_emulator/health") as pid:
        yield url, pid


def service_env(amqp_url: str, prefix: str, moto_url: str, chime_url: str) -> dict[str, str]:
    """The environment of a Belfry service a benchmark runs: the run's broker
    names and tables (under `prefix`), the stand-ins' endpoints, quiet JSON logs,
    fan-out instance `bench`. Callers add BELFRY_PORT and what their run changes."""
    return {
        "BELFRY_AMQP_URL": amqp_url,
        "BELFRY_AWS_ENDPOINT_URL": moto_url,
        "BELFRY_CHIME_ENDPOINT_URL": chime_url,
        "BELFRY_EXCHANGE": f"{prefix}.events",
        "BELFRY_DEAD_LETTER_EXCHANGE": f"{prefix}.dlx",
        "BELFRY_QUEUE_PREFIX": f"{prefix}.",
        "BELFRY_TABLE_PREFIX": prefix,
        "BELFRY_INSTANCE_ID": "bench",
        "BELFRY_LOG_LEVEL": "WARNING",
        "BELFRY_LOG_FORMAT": "json",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }


async def drop_topology(bus: AmqpBus, prefix: str) -> None:
    """Every queue a Belfry process of the run declared (each declares all durable
    bindings; the notifier's fan-out queue is `<prefix>.notifier.fanout.bench`, the
    benchmarks' BELFRY_INSTANCE_ID) and the run's exchanges."""
    await bus.declare(durable_bindings())
    bus.declared_queues.append(f"{prefix}.notifier.fanout.bench")
    with contextlib.suppress(Exception):
        await bus.delete_topology(exchanges=True)


@contextlib.asynccontextmanager
async def scratch_topology(url: str, prefix: str) -> AsyncIterator[AmqpBus]:
    """A bus on the run's exchanges and queue prefix; at the end (after the
    services stopped) the run's topology is deleted."""
    bus = AmqpBus(
        "bench",
        url=url,
        exchange=f"{prefix}.events",
        dead_letter_exchange=f"{prefix}.dlx",
        queue_prefix=f"{prefix}.",
    )
    await bus.start()
    try:
        yield bus
    finally:
        await drop_topology(bus, prefix)
        await bus.close()
