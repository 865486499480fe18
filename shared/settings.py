"""Settings every Belfry process reads (pydantic-settings, env prefix BELFRY_).

Each service subclasses `BelfrySettings` with its own fields; one class per
service, read once in `__main__`, passed down explicitly (no globals).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.ratelimit_rules import RateSyntaxError, parse_rate, parse_routes

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class BelfrySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BELFRY_", env_file=None, extra="ignore", populate_by_name=True
    )

    # --- messaging ---------------------------------------------------------
    amqp_url: str = Field(
        default="memory://",
        validation_alias=AliasChoices("BELFRY_AMQP_URL", "AMQP_URL", "amqp_url"),
        description="amqp://user:pass@host:5672/vhost for RabbitMQ, memory:// in process.",
    )
    exchange: str = Field("belfry.events", description="Topic exchange every event goes to.")
    dead_letter_exchange: str = Field("belfry.dlx", description="Where dead letters go.")
    queue_prefix: str = Field("", description="Prefix of every queue name (test isolation).")
    prefetch: int = Field(200, ge=1, le=5000, description="Unacked deliveries per consumer.")
    heartbeat_seconds: int = Field(30, ge=0, le=600, description="AMQP heartbeat.")
    publish_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for a broker confirm, reconnects included."
    )
    retry_delays_seconds: tuple[float, ...] = Field(
        (1.0, 5.0, 30.0), description="Back-off before each retry of a failed handler."
    )
    delivery_limit: int = Field(20, ge=1, description="Broker-side redelivery cap (crash loops).")

    # --- AWS ---------------------------------------------------------------
    aws_region: str = Field(
        "us-east-1",
        validation_alias=AliasChoices("BELFRY_AWS_REGION", "AWS_REGION", "aws_region"),
        description="Region of DynamoDB, S3 and the Chime SDK control plane.",
    )
    aws_endpoint_url: str | None = Field(
        None, description="DynamoDB and S3 endpoint (moto server locally); unset on real AWS."
    )
    chime_endpoint_url: str | None = Field(
        None, description="Chime SDK endpoint (the Belfry emulator locally); unset on real AWS."
    )
    table_prefix: str = Field("belfry", description="Prefix of every DynamoDB table name.")
    aws_max_attempts: int = Field(
        5, ge=1, le=20, description="Attempts per AWS call, throttling and 5xx retried."
    )
    aws_max_pool_connections: int = Field(50, ge=1, description="HTTP connections per client.")
    aws_connect_timeout_seconds: float = Field(3.0, gt=0, description="AWS connect timeout.")
    aws_read_timeout_seconds: float = Field(10.0, gt=0, description="AWS read timeout.")

    # --- the account-wide Chime budget (DESIGN.md "Rush hour") ---------------
    chime_rate_enabled: bool = Field(
        True,
        description="Every Chime request first takes a slot of its API's account-wide "
        "budget (a schedule in DynamoDB all replicas share); false: send and let Chime throttle.",
    )
    chime_rate_per_second: float = Field(
        10.0, gt=0, le=10000, description="Chime's request rate per API and account (default 10)."
    )
    chime_rate_burst: int = Field(
        20, ge=1, le=10000, description="Chime's burst per API and account (default 20)."
    )
    chime_rate_headroom: int = Field(
        3,
        ge=0,
        le=1000,
        description="Requests of each burst kept back, so that a burst that leaves late "
        "(a busy process, the network) is not throttled: covers delays of "
        "headroom / rate seconds.",
    )
    chime_rate_operations: dict[str, tuple[float, int]] = Field(
        default_factory=dict,
        description="Rate and burst of APIs whose limits differ, as JSON: "
        '{"BatchCreateAttendee": [10, 20]}.',
    )
    chime_rate_max_wait_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Longest wait for a slot when the caller set no deadline (event handlers, "
        "start-up); a request whose slot lies later is refused (503 `chime_busy`).",
    )

    # --- per-user rate limits at the HTTP edge (shared/ratelimit.py) ---------
    rate_limit_enabled: bool = Field(
        True,
        description="Every authenticated request draws from its user's budget for its route "
        "(GCRA in DynamoDB, shared by every replica); over it: 429 `rate_limited` with "
        "`Retry-After`. false: no rate limits.",
    )
    rate_limit_writes: str = Field(
        "10/s burst 50",
        description="Each user's rate per route for POST, PUT, PATCH and DELETE, e.g. "
        "`10/s burst 50`, `30/min`, or `off`.",
    )
    rate_limit_reads: str = Field(
        "50/s burst 100",
        description="Each user's rate per route for GET, HEAD and OPTIONS (same form).",
    )
    rate_limit_routes: str = Field(
        "POST /chat/channels/{channel_id}/messages=5/s burst 20; "
        "POST /chat/attachments=2/s burst 10",
        description="Routes whose per-user rate differs, `;`-separated `METHOD /route/template"
        "=RATE` (the route as declared, e.g. `POST /schedule=2/s burst 10`; RATE may be `off`).",
    )
    rate_limit_timeout_seconds: float = Field(
        1.0,
        gt=0,
        le=30,
        description="Longest wait for the rate-limit store; a request whose check fails or "
        "takes longer is let through (fail open, logged and counted).",
    )

    @field_validator("rate_limit_writes", "rate_limit_reads")
    @classmethod
    def _rate(cls, value: str, info: Any) -> str:
        try:
            parse_rate(value)
        except RateSyntaxError as exc:
            raise ValueError(f"BELFRY_{str(info.field_name).upper()}: {exc}") from None
        return value.strip()

    @field_validator("rate_limit_routes")
    @classmethod
    def _routes(cls, value: str) -> str:
        try:
            parse_routes(value)
        except RateSyntaxError as exc:
            raise ValueError(f"BELFRY_RATE_LIMIT_ROUTES: {exc}") from None
        return value.strip()

    # --- auth --------------------------------------------------------------
    auth_mode: Literal["local", "cognito"] = Field(
        "local", description="`cognito` in production; `local` accepts `make token` tokens."
    )
    auth_local_secret: SecretStr = Field(
        SecretStr("belfry-local-development-secret-change-me"),
        description="HS256 key of local runs; never used in cognito mode.",
    )
    auth_local_issuer: str = Field("belfry-local", description="`iss` of local tokens.")
    auth_local_client_id: str = Field("belfry-local", description="`client_id` of local tokens.")
    cognito_region: str | None = Field(None, description="Defaults to the pool id's region.")
    cognito_user_pool_id: str | None = Field(None, description="e.g. eu-west-1_AbCdEf123.")
    cognito_client_ids: tuple[str, ...] = Field(
        (), description='App client ids accepted, as JSON: ["id1", "id2"].'
    )
    cognito_jwks_url: str | None = Field(
        None, description="Overrides the pool's well-known JWKS URL (tests, private endpoints)."
    )
    cognito_endpoint_url: str | None = Field(
        None,
        description="The Cognito endpoint browsers sign in at (InitiateAuth), as `GET "
        "/auth/config` tells them; defaults to https://cognito-idp.<region>.amazonaws.com/.",
    )
    jwks_min_refetch_seconds: float = Field(
        60.0, description="Least time between two JWKS fetches for an unknown key id."
    )
    jwks_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of one JWKS fetch.")
    cognito_revocation_check_seconds: float = Field(
        60.0,
        ge=0,
        description="Cognito mode: how long a token's GetUser answer (alive or revoked) is "
        "reused, and how often an open WebSocket checks its token again; 0: never ask.",
    )
    cognito_revocation_outage_grace_seconds: float = Field(
        300.0,
        ge=0,
        description="While the user pool cannot be asked, signature-valid tokens are accepted "
        "unchecked for this long after its last answer; then refused (503 auth_unavailable).",
    )

    # --- tracing (shared/tracing.py, docs/operations.md) ---------------------
    tracing_enabled: bool = Field(
        False,
        description="Trace requests, events and AWS calls with OpenTelemetry. Also on when "
        "`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (unless "
        "`OTEL_SDK_DISABLED=true`); the other `OTEL_*` variables (service name, sampler, "
        "headers) are honoured.",
    )
    tracing_exporter: Literal["otlp", "console"] = Field(
        "otlp",
        description="`otlp`: OTLP over HTTP to `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` (default "
        "http://localhost:4318/v1/traces); `console`: spans printed to stdout (debugging).",
    )

    # --- process -----------------------------------------------------------
    instance_id: str | None = Field(None, description="Defaults to host name + pid.")
    log_level: str = Field(
        "INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`auto`: JSON unless the output is a terminal."
    )
    host: str = Field("127.0.0.1", description="Listen address (0.0.0.0 in containers).")
    port: int = Field(
        8080,
        validation_alias=AliasChoices("BELFRY_PORT", "PORT", "port"),
        description="HTTP port.",
    )

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"should be one of {', '.join(LOG_LEVELS)}")
        return level

    # --- HTTP edge (docs/security.md) -----------------------------------------
    http_max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="Request line and headers, at most (else 431)."
    )
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, description="Time a client has to send a request's head (else 408)."
    )
    http_max_body_bytes: int = Field(
        64 * 1024,
        ge=1,
        description="JSON request bodies (read whole, then parsed), at most (else 413); "
        "also the largest WebSocket message.",
    )
    http_max_upload_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1,
        description="Other request bodies (uploads, streamed through), at most (else 413); "
        "routes keep their own smaller limits (chat's attachments).",
    )
    http_body_limits: dict[str, int] = Field(
        default_factory=dict,
        description="Per-route body limits in bytes, overriding the two above, as JSON: "
        '{"POST /schedule": 4096}.',
    )
    http_max_json_depth: int = Field(
        32, ge=2, le=512, description="Nesting of a JSON body, at most (else 400 invalid_json)."
    )
    http_docs: bool = Field(
        True, description="Serve /docs, /redoc and /openapi.json (turn off in production)."
    )
    http_metrics: bool = Field(
        True,
        description="Serve /metrics on the API port; turn off, or set `BELFRY_METRICS_PORT`, "
        "in production.",
    )
    metrics_port: int | None = Field(
        None, description="Serve /metrics on this (internal) port instead of the API port."
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Browser origins allowed to call the API from another origin, "
        "comma-separated (`https://app.example.com,http://localhost:5173`); empty: no CORS "
        "headers at all (same-origin only). No wildcard (docs/http.md).",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if not isinstance(value, list | tuple):
            return value
        origins = []
        for item in value:
            origin = str(item).strip().rstrip("/")
            if not origin:
                continue
            scheme, sep, host = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not host or "/" in host:
                raise ValueError(
                    f"BELFRY_CORS_ORIGINS: {origin[:80]!r} is not an origin "
                    "(scheme://host[:port], no path, no wildcard)"
                )
            origins.append(origin)
        return tuple(dict.fromkeys(origins))

    def environment(self, **changes: Any) -> dict[str, str]:
        """These settings (with `changes`) as the `BELFRY_*` variables that give
        another process of the same service exactly them: a replica, a bench
        worker. Unset optional fields are left out; secrets are spelled out."""
        values = self.model_validate({**self.model_dump(), **changes})
        dumped = values.model_dump(mode="json")
        env = {}
        for name in type(self).model_fields:
            value = getattr(values, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(dumped[name], str):
                text = dumped[name]
            else:
                text = json.dumps(dumped[name])
            env[f"BELFRY_{name.upper()}"] = text
        return env


def settings_reference(classes: dict[str, type[BelfrySettings]]) -> str:
    """A Markdown table per settings class: environment variable, default, meaning.
    `docs/configuration.md` is generated from this (`python -m
    services.platform.configuration`, which knows every service's class)."""
    sections = []
    inherited = set(BelfrySettings.model_fields)
    for title, cls in classes.items():
        rows = ["| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            if cls is not BelfrySettings and name in inherited:
                continue
            default = "" if field.is_required() else field.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                default = "(a development secret)"
            aliases = [f"`BELFRY_{name.upper()}`"]
            if isinstance(field.validation_alias, AliasChoices):
                aliases += [
                    f"`{a}`"
                    for a in field.validation_alias.choices
                    if isinstance(a, str) and a.isupper() and a != f"BELFRY_{name.upper()}"
                ]
            shown = "" if default in ("", None, ()) else f"`{default}`"
            rows.append(f"| {' or '.join(aliases)} | {shown} | {field.description or ''} |")
        sections.append(f"## {title}\n\n" + "\n".join(rows))
    return "\n\n".join(sections) + "\n"
