"""Which services the platform process runs, and the settings each one gets.

The platform is the one place that knows every service: it imports their
definitions (no I/O happens at import) and their settings classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.chat.bootstrap import definition as chat
from services.notifier.bootstrap import definition as notifier
from services.rooms.bootstrap import definition as rooms
from services.scheduler.bootstrap import definition as scheduler
from shared.service import ServiceDefinition
from shared.settings import BelfrySettings

from .settings import PlatformSettings

DEFINITIONS: tuple[ServiceDefinition, ...] = (scheduler, rooms, chat, notifier)


def definitions() -> list[ServiceDefinition]:
    """Each service's `ServiceDefinition`, in start-up order."""
    return list(DEFINITIONS)


def settings_classes() -> dict[str, type[BelfrySettings]]:
    """The common settings, each service's own and the platform's: what
    docs/configuration.md lists."""
    return {
        "Every process": BelfrySettings,
        **{d.name: d.settings_type for d in DEFINITIONS},
        "platform": PlatformSettings,
    }


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
