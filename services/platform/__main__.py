"""`python -m services.platform` (`make run`): the whole platform in one process.

Start-up: bind every port (one clear error if one is taken), start the embedded
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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from fastapi import FastAPI

from services.platform.banner import Endpoints, render_banner
from services.platform.composition import definitions, service_settings
from services.platform.console_app import mount_console
from services.platform.embedded import (
    PortUnavailable,
    bind_socket,
    embedded_aws,
    embedded_chime,
    port_of,
    start_server,
    url_of,
)
from services.platform.seeding import SeededPool, seed_chats, seed_pool
from services.platform.settings import PlatformSettings
from shared.http_server import (
    ExposedLocalSecret,
    refuse_exposed_local_secret,
    serve_metrics_apart,
    server_config,
)
from shared.logging import configure_logging, get_logger
from shared.service import ServiceDefinition, create_platform_app

log = get_logger("belfry.platform")


class Stopper:
    """SIGINT/SIGTERM: the first asks for a graceful stop, the second forces one."""

    def __init__(self, on_force: Callable[[], object]) -> None:
        self.requested = asyncio.Event()
        self.signal_name: str | None = None
        self._on_force = on_force

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._handle, sig)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def _handle(self, sig: signal.Signals) -> None:
        if self.requested.is_set():
            log.warning("platform.forced_stop", signal=sig.name)
            self._on_force()
            return
        self.signal_name = sig.name
        log.info("platform.stop_requested", signal=sig.name)
        self.requested.set()


async def run(settings: PlatformSettings) -> int:
    stopper = Stopper(_exit_now)
    stopper.install()
    try:
        async with contextlib.AsyncExitStack() as stack:
            # Bind every port first: a busy port fails here, before anything starts.
            gateway_sock = bind_socket(settings.host, settings.port, "the gateway", "BELFRY_PORT")
            stack.callback(gateway_sock.close)
            aws_sock = chime_sock = None
            if settings.embeds_aws:
                aws_sock = bind_socket(
                    settings.host,
                    settings.platform_local_aws_port,
                    "the embedded moto server",
                    "BELFRY_PLATFORM_LOCAL_AWS_PORT (or set BELFRY_AWS_ENDPOINT_URL)",
                )
                stack.callback(aws_sock.close)
            if settings.embeds_chime:
                chime_sock = bind_socket(
                    settings.host,
                    settings.platform_local_chime_port,
                    "the embedded Chime SDK emulator",
                    "BELFRY_PLATFORM_LOCAL_CHIME_PORT (or set BELFRY_CHIME_ENDPOINT_URL)",
                )
                stack.callback(chime_sock.close)

            services = definitions()
            # Stopped last (the exit stack unwinds in reverse): the services need them
            # until their outboxes are flushed.
            aws_url = settings.aws_endpoint_url
            if aws_sock is not None:
                aws_url = stack.enter_context(embedded_aws(aws_sock))
            chime_url = settings.chime_endpoint_url
            if chime_sock is not None:
                chime_url = await stack.enter_async_context(
                    embedded_chime(chime_sock, events_endpoint=aws_url)
                )

            seeded: SeededPool | None = None
            if aws_url is not None and aws_sock is not None and settings.platform_local_pool:
                seeded = await seed_pool(aws_url, settings.aws_region)

            configs = service_settings(
                services,
                aws_endpoint_url=aws_url,
                chime_endpoint_url=chime_url,
                provision_meeting_events=aws_sock is not None,
                auth=seeded.pool.service_settings() if seeded else None,
            )
            app = create_platform_app(services, settings=configs, title="Belfry")
            mount_console(app)
            # The services' lifespan, driven here rather than by uvicorn, so that its
            # failure is an exception of ours and its end comes after the gateway's.
            log.info("platform.starting", services=[d.name for d in services])
            await stack.enter_async_context(app.router.lifespan_context(app))
            if seeded is not None and not stopper.requested.is_set():
                await seed_chats(app, seeded)
            if not stopper.requested.is_set():
                endpoints = Endpoints(
                    gateway=url_of(settings.host, port_of(gateway_sock)),
                    aws=aws_url,
                    chime=chime_url,
                    aws_embedded=aws_sock is not None,
                    chime_embedded=chime_sock is not None,
                    pool=seeded.pool if seeded else None,
                )
                await _serve_gateway(
                    stack,
                    app,
                    sock=gateway_sock,
                    settings=settings,
                    services=services,
                    endpoints=endpoints,
                )
                await stopper.requested.wait()
            log.info("platform.stopping", signal=stopper.signal_name)
    finally:
        stopper.uninstall()
    log.info("platform.stopped")
    return 0


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
    settings = PlatformSettings()
    configure_logging(settings.log_level, settings.log_format)
    # One line per HTTP request the process makes (sign-ins, key sets) drowns its own.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        if not settings.embeds_pool:  # with its own pool, it verifies the pool's tokens
            refuse_exposed_local_secret(settings)
        serve_metrics_apart(settings)
        return asyncio.run(run(settings))
    except ExposedLocalSecret as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PortUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
    sys.exit(main())
