"""Which services the platform process runs, and the settings each one gets."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.logging import get_logger
from shared.service import ServiceDefinition
from shared.settings import BelfrySettings

log = get_logger("belfry.platform")

SERVICES: tuple[str, ...] = ("scheduler", "rooms", "chat", "notifier")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Loaded:
    definitions: list[ServiceDefinition]
    missing: list[str] = field(default_factory=list)


class ServiceMissing(RuntimeError):
    pass


def load_definitions(names: Sequence[str] = SERVICES, *, strict: bool = False) -> Loaded:
    """Each service's `ServiceDefinition`, imported only now (no I/O at import).

    A service whose package has no definition yet is skipped with a warning in a
    local run; with `strict` (CI) it is an error. A module that exists but fails
    to import always fails: that is a bug, not a missing service.
    """
    definitions: list[ServiceDefinition] = []
    missing: list[str] = []
    for name in names:
        definition = _definition(name)
        if definition is None:
            if strict:
                raise ServiceMissing(f"services.{name} has no bootstrap.definition")
            log.warning("platform.service_missing", service=name, expected="bootstrap.definition")
            missing.append(name)
            continue
        definitions.append(definition)
    return Loaded(definitions, missing)


def _definition(name: str) -> ServiceDefinition | None:
    module_name = f"services.{name}.bootstrap"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in (module_name, f"services.{name}"):
            raise
        return None
    found = getattr(module, "definition", None)
    if found is not None and not isinstance(found, ServiceDefinition):
        raise TypeError(f"{module_name}.definition is a {type(found).__name__}")
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
