"""`python -m services.platform` (`make run`): the whole platform in one process.

Start-up: bind every port (one error naming every busy one, exit code 2; an
invalid setting is one line naming the variable, exit code 2), start the embedded
stand-ins that are not configured (moto for DynamoDB and S3 unless
`BELFRY_AWS_ENDPOINT_URL` is set, the Chime SDK emulator unless
`BELFRY_CHIME_ENDPOINT_URL` is set; `BELFRY_PLATFORM_EMBED_AWS=false` /
`BELFRY_PLATFORM_EMBED_CHIME=false` make "unset" mean real AWS), build the four
services on one event bus (in-process unless `AMQP_URL` is set; their `build`
creates tables, bucket and AppInstance), then serve them all behind one gateway
port with one OpenAPI document, and print where everything is.

Sign-in: with the embedded moto server, a Cognito user pool `belfry-local` is
made there before the services start (its app client, groups and seeded users,
`services.platform.identity`), every service accepts that pool's access tokens
and nothing else, and once they run the seeded customers are assigned their
managers through the API (docs/sign-in.md). Without it (or with
`BELFRY_PLATFORM_LOCAL_POOL=false`) the `BELFRY_AUTH_*` settings decide.

Shutdown on SIGINT (Ctrl-C) or SIGTERM, exit code 0: the gateway stops accepting
and closes its connections, the services stop consuming, finish in-flight
handlers, flush their outboxes and close, and then the embedded stand-ins stop.
A second signal ends the process at once (exit code 1): safe, because what was
not published yet is in the outbox and what was not acknowledged is redelivered.
A signal during start-up (RabbitMQ still being retried, say) cancels it at once:
one line, exit code 130 for SIGINT, 143 for SIGTERM.

`GET /platform/info` (public, `services.platform.local_info`) tells clients such as
`make demo` where the platform's stand-ins are: its Chime SDK emulator above all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi import FastAPI

from services.platform.banner import Endpoints, render_banner
from services.platform.composition import definitions, service_settings
from services.platform.console_app import mount_console
from services.platform.embedded import (
    embedded_aws,
    embedded_chime,
    port_of,
    start_server,
    url_of,
)
from services.platform.local_info import mount_local_info
from services.platform.seeding import SeededPool, seed_chats, seed_pool
from services.platform.settings import PlatformSettings
from shared.http_server import ExposedLocalSecret, refuse_exposed_local_secret, server_config
from shared.logging import configure_logging, get_logger
from shared.service import (
    PortNeed,
    PortsUnavailable,
    ServiceDefinition,
    Signals,
    StartupCancelled,
    bind_ports,
    cancelled_start_up,
    create_platform_app,
    metrics_need,
    start_metrics_apart,
)
from shared.settings_errors import check_settings, load_settings

log = get_logger("belfry.platform")


class Stopper(Signals):
    """SIGINT/SIGTERM: during start-up the first cancels it; once serving, the first
    asks for a graceful stop and the second forces one (`on_force`)."""

    def __init__(self, on_force: Callable[[], object]) -> None:
        super().__init__(on_force=on_force)


@dataclass
class Ports:
    """The platform's listening sockets, bound before anything starts."""

    gateway: socket.socket
    aws: socket.socket | None
    chime: socket.socket | None
    metrics: socket.socket | None

    def close(self) -> None:
        for sock in (self.gateway, self.aws, self.chime, self.metrics):
            if sock is not None:
                sock.close()


def bind_platform_ports(settings: PlatformSettings) -> Ports:
    """Every port the platform needs; `PortsUnavailable` names all the busy ones."""
    host = settings.host
    needs = [PortNeed(host, settings.port, "the gateway", "BELFRY_PORT")]
    if settings.embeds_aws:
        needs.append(
            PortNeed(
                host,
                settings.platform_local_aws_port,
                "the embedded moto server",
                "BELFRY_PLATFORM_LOCAL_AWS_PORT (or set BELFRY_AWS_ENDPOINT_URL)",
            )
        )
    if settings.embeds_chime:
        needs.append(
            PortNeed(
                host,
                settings.platform_local_chime_port,
                "the embedded Chime SDK emulator",
                "BELFRY_PLATFORM_LOCAL_CHIME_PORT (or set BELFRY_CHIME_ENDPOINT_URL)",
            )
        )
    needs += metrics_need(settings)
    found = iter(bind_ports(needs))
    gateway = next(found)
    return Ports(
        gateway=gateway,
        aws=next(found) if settings.embeds_aws else None,
        chime=next(found) if settings.embeds_chime else None,
        metrics=next(found) if settings.metrics_port is not None else None,
    )


async def run(settings: PlatformSettings, ports: Ports | None = None) -> int:
    """Start, serve until a signal, stop. A signal during start-up cancels it
    (`StartupCancelled`)."""
    if ports is None:
        ports = bind_platform_ports(settings)
    stopper = Stopper(_exit_now)
    stopper.install()
    try:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(ports.close)
            with stopper.starting():
                await _start(stack, settings, ports)
            await stopper.requested.wait()
            log.info("platform.stopping", signal=stopper.signal_name)
    finally:
        stopper.uninstall()
    log.info("platform.stopped")
    return 0


async def _start(
    stack: contextlib.AsyncExitStack, settings: PlatformSettings, ports: Ports
) -> None:
    """Everything up to the banner; what it starts, `stack` stops."""
    services = definitions()
    # Stopped last (the exit stack unwinds in reverse): the services need them
    # until their outboxes are flushed.
    aws_url = settings.aws_endpoint_url
    if ports.aws is not None:
        aws_url = stack.enter_context(embedded_aws(ports.aws))
    chime_url = settings.chime_endpoint_url
    if ports.chime is not None:
        chime_url = await stack.enter_async_context(
            embedded_chime(ports.chime, events_endpoint=aws_url)
        )

    seeded: SeededPool | None = None
    if aws_url is not None and ports.aws is not None and settings.platform_local_pool:
        seeded = await seed_pool(aws_url, settings.aws_region)

    configs = service_settings(
        services,
        aws_endpoint_url=aws_url,
        chime_endpoint_url=chime_url,
        provision_meeting_events=ports.aws is not None,
        auth=seeded.pool.service_settings() if seeded else None,
    )
    app = create_platform_app(services, settings=configs, title="Belfry")
    endpoints = Endpoints(
        gateway=url_of(settings.host, port_of(ports.gateway)),
        aws=aws_url,
        chime=chime_url,
        aws_embedded=ports.aws is not None,
        chime_embedded=ports.chime is not None,
        pool=seeded.pool if seeded else None,
    )
    mount_local_info(app, endpoints)
    mount_console(app)
    # The services' lifespan, driven here rather than by uvicorn, so that its
    # failure is an exception of ours and its end comes after the gateway's.
    log.info("platform.starting", services=[d.name for d in services])
    await stack.enter_async_context(app.router.lifespan_context(app))
    if seeded is not None:
        await seed_chats(app, seeded)
    await _serve_gateway(
        stack,
        app,
        sock=ports.gateway,
        settings=settings,
        services=services,
        endpoints=endpoints,
    )


async def _serve_gateway(
    stack: contextlib.AsyncExitStack,
    app: FastAPI,
    *,
    sock: socket.socket,
    settings: PlatformSettings,
    services: Sequence[ServiceDefinition],
    endpoints: Endpoints,
) -> None:
    """Serve the app on the gateway socket (stopped by `stack`) and print the banner."""
    config = server_config(
        app,
        settings,
        lifespan="off",
        timeout_graceful_shutdown=int(settings.platform_shutdown_seconds),
    )
    gateway = await start_server(config, sock, "gateway")
    stack.push_async_callback(gateway.stop, settings.platform_shutdown_seconds + 5)
    prefixes = sorted(
        {
            "/" + path.strip("/").split("/")[0]
            for d in services
            for router in d.routers
            for route in router.routes
            if isinstance(path := getattr(route, "path", None), str) and path.strip("/")
        }
    )
    names = [d.name for d in services]
    print(render_banner(settings, endpoints, names, prefixes), flush=True)
    log.info("platform.ready", url=endpoints.gateway, aws=endpoints.aws, chime=endpoints.chime)


def _exit_now() -> None:
    print("stopped by a second signal before the shutdown finished", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


def main() -> int:
    # Its own settings and each service's: every bad variable named at once.
    check_settings(PlatformSettings, *(d.settings_type for d in definitions()))
    settings = load_settings(PlatformSettings)
    configure_logging(settings.log_level, settings.log_format)
    # One line per HTTP request the process makes (sign-ins, key sets) drowns its own.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        if not settings.embeds_pool:  # with its own pool, it verifies the pool's tokens
            refuse_exposed_local_secret(settings)
        ports = bind_platform_ports(settings)
        start_metrics_apart(settings, ports.metrics)
        ports.metrics = None
        return asyncio.run(run(settings, ports))
    except ExposedLocalSecret as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PortsUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StartupCancelled as exc:
        return cancelled_start_up(exc, "the platform's")
    except Exception as exc:
        hint = _hint(exc, settings)
        if hint:  # a known cause: the hint says more than a traceback would
            log.error("platform.failed", error=repr(exc))
        else:
            log.error("platform.failed", exc_info=exc)
        print(f"error: the platform failed: {exc!r}{hint}", file=sys.stderr)
        return 1


def _hint(exc: BaseException, settings: PlatformSettings) -> str:
    text = repr(exc).lower()
    if settings.amqp_url.startswith("amqp") and ("connect" in text or "amqp" in text):
        return (
            "\n  Is RabbitMQ running at AMQP_URL? Start it with `rabbitmq-server -detached`, "
            "or unset AMQP_URL to use the in-process bus."
        )
    if "endpoint" in text or "credentials" in text:
        return "\n  Check BELFRY_AWS_ENDPOINT_URL / BELFRY_CHIME_ENDPOINT_URL and AWS credentials."
    return ""


if __name__ == "__main__":
    code = main()
    if code in (130, 143):
        # A cancelled start-up has closed everything it opened: leave now rather than
        # spend a second or two unloading moto's modules.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
