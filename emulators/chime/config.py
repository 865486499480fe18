"""The emulator's tunables, changed at run time through `PUT /_emulator/config`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class EmulatorConfig:
    # Chime ends a meeting 5 minutes after its last connected attendee left...
    meeting_idle_seconds: float = 300.0
    # ...and 24 hours after it started, whatever happens.
    meeting_max_seconds: float = 86_400.0
    # Chime's default attendee capacity per meeting.
    meeting_max_attendees: int = 250
    account_id: str = "123456789012"
    # What GetMessagingSessionEndpoint answers; None: the host the request came to.
    messaging_endpoint: str | None = None
    # Where meeting lifecycle events go (an EventBridge endpoint URL); None: nowhere.
    events_endpoint: str | None = None
    event_bus_name: str = "default"

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: Any) -> None:
        """Apply a partial update, all or nothing; ValueError names what is wrong."""
        if not isinstance(changes, dict):
            raise ValueError("the config must be a JSON object")
        known = {f.name: f for f in dataclasses.fields(self)}
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(known)}")
            checked[name] = _check(name, value)
        for name, value in checked.items():
            setattr(self, name, value)


def _check(name: str, value: Any) -> Any:
    if name in ("meeting_idle_seconds", "meeting_max_seconds"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"{name} must be a positive number")
        return float(value)
    if name == "meeting_max_attendees":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer")
        return value
    if name == "account_id":
        if not isinstance(value, str) or not value.isdigit() or len(value) != 12:
            raise ValueError("account_id must be 12 digits")
        return value
    if name == "event_bus_name":
        if not isinstance(value, str) or not value:
            raise ValueError("event_bus_name must be a non-empty string (a bus name or ARN)")
        return value
    if name == "events_endpoint" and isinstance(value, str):
        if not value.startswith(("http://", "https://")):
            raise ValueError("events_endpoint must be an http:// or https:// URL, or null")
        return value.rstrip("/")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value
