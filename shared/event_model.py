"""The base of every event model: `EventData`, the registry that maps type
name <-> routing key <-> model (`@event`), and the field types events share.
`shared.events` re-exports all of it; import from there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from shared.clock import utc_iso


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time without a zone is ambiguous; give it in UTC")
    return value.astimezone(UTC)


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(utc_iso, return_type=str),
]
EpochSeconds = Annotated[int, Field(ge=0, description="Seconds since the Unix epoch, UTC.")]


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventData(BaseModel):
    """Base of every event's `data`. Unknown fields are kept, never an error."""

    model_config = ConfigDict(extra="allow", frozen=True)

    TYPE: ClassVar[str]
    ROUTING_KEY: ClassVar[str]
    VERSION: ClassVar[int] = 1


@dataclass(frozen=True)
class EventSpec:
    type_name: str
    routing_key: str
    model: type[EventData]
    version: int


REGISTRY: dict[str, EventSpec] = {}
_BY_ROUTING_KEY: dict[str, EventSpec] = {}

E = TypeVar("E", bound=type[EventData])


def event(type_name: str, routing_key: str, version: int = 1) -> Any:
    """Class decorator: register an event model under its type and routing key."""

    def register(cls: E) -> E:
        if type_name in REGISTRY or routing_key in _BY_ROUTING_KEY:
            raise ValueError(f"event {type_name} / {routing_key} registered twice")
        cls.TYPE, cls.ROUTING_KEY, cls.VERSION = type_name, routing_key, version
        spec = EventSpec(type_name, routing_key, cls, version)
        REGISTRY[type_name] = spec
        _BY_ROUTING_KEY[routing_key] = spec
        return cls

    return register


def spec_for_routing_key(routing_key: str) -> EventSpec:
    return _BY_ROUTING_KEY[routing_key]
