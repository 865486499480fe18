"""Which services the platform process runs, and the settings each one gets."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from shared.service import ServiceDefinition
from shared.settings import BelfrySettings

SERVICES: tuple[str, ...] = ("scheduler", "rooms", "chat", "notifier")


def definitions(names: Sequence[str] = SERVICES) -> list[ServiceDefinition]:
    """Each service's `ServiceDefinition`, imported only now (no I/O at import)."""
    found = [importlib.import_module(f"services.{name}.bootstrap").definition for name in names]
    for definition in found:
        if not isinstance(definition, ServiceDefinition):
            raise TypeError(f"services.*.bootstrap.definition is a {type(definition).__name__}")
    return found


def service_settings(
    definitions: Sequence[ServiceDefinition],
    *,
    aws_endpoint_url: str | None,
    chime_endpoint_url: str | None,
) -> dict[str, BelfrySettings]:
    """Each service's own settings class read from the environment, with the
    endpoints of the embedded stand-ins filled in where they run."""
    overrides: dict[str, Any] = {}
    if aws_endpoint_url is not None:
        overrides["aws_endpoint_url"] = aws_endpoint_url
    if chime_endpoint_url is not None:
        overrides["chime_endpoint_url"] = chime_endpoint_url
    return {d.name: d.settings_type(**overrides) for d in definitions}
