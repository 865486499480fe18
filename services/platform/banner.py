"""What `make run` prints once the platform answers: where everything is, how to get in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from services.platform.identity import PASSWORD, SEED_ASSIGNMENTS, SEED_USERS, UserPool
from shared.settings import BelfrySettings


@dataclass(frozen=True)
class Endpoints:
    gateway: str
    aws: str | None  # DynamoDB + S3
    chime: str | None
    aws_embedded: bool
    chime_embedded: bool
    pool: UserPool | None = None  # the local Cognito user pool, in the embedded moto


def redact(url: str) -> str:
    """The URL without its password (`amqp://user:***@host/vhost`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def render_banner(
    settings: BelfrySettings,
    endpoints: Endpoints,
    services: Sequence[str],
    prefixes: Sequence[str] = (),
) -> str:
    g = endpoints.gateway
    bus = (
        "in-process memory bus (set AMQP_URL for RabbitMQ)"
        if settings.amqp_url.startswith("memory://")
        else f"RabbitMQ {redact(settings.amqp_url)}"
    )
    aws_origin = "embedded moto" if endpoints.aws_embedded else "configured"
    aws = f"{endpoints.aws} ({aws_origin})"
    if endpoints.aws is None:
        aws = f"real AWS, region {settings.aws_region}"
    chime_origin = "embedded emulator" if endpoints.chime_embedded else "configured"
    chime = f"{endpoints.chime} ({chime_origin})"
    if endpoints.chime is None:
        chime = f"real Chime SDK, region {settings.aws_region}"
    lines = [
        "",
        f"Belfry is running: {', '.join(services)} in one process",
        "",
        f"  gateway      {g}   {'  '.join(prefixes)}",
        f"  API docs     {g}/docs  {g}/redoc   (OpenAPI: {g}/openapi.json, docs/http.md)",
        "  probes       /healthz  /readyz  /metrics",
        f"  events       {bus}",
        f"  DynamoDB+S3  {aws}",
        f"  Chime SDK    {chime}",
    ]
    if endpoints.chime_embedded and endpoints.chime:
        control = f"{endpoints.chime}/_emulator"
        lines.append(f"               emulator control API: {control} (docs/emulator.md)")
    lines.append("")
    examples = [
        "  make token SUB=alice GROUPS=admin       # schedules rooms",
        "  make token SUB=mia GROUPS=manager       # sees and enters every chat",
        "  make token SUB=carl GROUPS=customer     # chats with the assigned manager",
        "",
        "  TOKEN=$(make -s token SUB=alice GROUPS=admin)",
        f'  curl -H "Authorization: Bearer $TOKEN" {g}/rooms',
    ]
    if endpoints.pool is not None:
        lines += [*_pool_lines(endpoints.pool, g), *examples]
    elif settings.auth_mode == "local":
        lines += [
            "Tokens (local signing key, valid for an hour; GROUPS: admin, manager, customer):",
            *examples,
        ]
    else:
        lines.append(
            f"Tokens: Cognito access tokens of user pool {settings.cognito_user_pool_id} "
            "(BELFRY_AUTH_MODE=cognito)."
        )
    lines += ["", f"Play both stories: {demo_command(g)}      Stop: Ctrl-C", ""]
    return "\n".join(lines)


DEFAULT_GATEWAY = "http://127.0.0.1:8080"  # where `make demo` looks without BELFRY_URL


def demo_command(gateway: str) -> str:
    """The command that plays the demo against this gateway, exactly."""
    if gateway.rstrip("/") == DEFAULT_GATEWAY:
        return "make demo"
    return f"BELFRY_URL={gateway} make demo"


def _pool_lines(pool: UserPool, gateway: str) -> list[str]:
    by_group: dict[str, list[str]] = {}
    for name, groups in SEED_USERS.items():
        by_group.setdefault(",".join(groups), []).append(name)
    people = "; ".join(f"{', '.join(names)} ({group})" for group, names in by_group.items())
    chats = ", ".join(f"{customer} with {manager}" for customer, manager in SEED_ASSIGNMENTS)
    return [
        f"Sign-in: Cognito user pool {pool.user_pool_id} (belfry-local) in the embedded moto,",
        f"  app client {pool.client_id}; browsers ask {gateway}/auth/config (docs/sign-in.md)",
        f"  users (password {PASSWORD}): {people}",
        f"  chats: {chats}",
        "Tokens (the pool's access tokens, valid for an hour; GROUPS: admin, manager, customer;",
        "  make token creates the user and sets exactly these groups; LOCAL=1: an HS256 token):",
    ]
