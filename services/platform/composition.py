"""Which services the platform process runs, and the settings each one gets.

The platform is the one place that knows every service: it imports their
definitions (no I/O happens at import) and their settings classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    provision_meeting_events: bool = False,
    auth: Mapping[str, Any] | None = None,
) -> dict[str, BelfrySettings]:
    """Each service's own settings class read from the environment, with the
    endpoints of the embedded stand-ins filled in where they run, with the
    embedded moto server, rooms' meeting-events rule and queue made there, and
    `auth` (the local user pool's `UserPool.service_settings()`) for every one."""
    overrides: dict[str, Any] = dict(auth or {})
    if aws_endpoint_url is not None:
        overrides["aws_endpoint_url"] = aws_endpoint_url
    if chime_endpoint_url is not None:
        overrides["chime_endpoint_url"] = chime_endpoint_url
    configs = {}
    for d in definitions:
        own = dict(overrides)
        if (
            provision_meeting_events
            and "rooms_meeting_events_provision" in d.settings_type.model_fields
        ):
            own["rooms_meeting_events_provision"] = True
        configs[d.name] = d.settings_type(**own)
    return configs
