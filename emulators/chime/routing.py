"""Map an HTTP request to a Chime SDK operation, using botocore's service models.

Identity, meetings and messaging share one port, so a route is the method, the
path template of `http.requestUri` and the literal query parameters it carries
(`?operation=batch-create`, `?scope=...`). The most specific route wins: more
literal path segments first, then more required query parameters. Routes that
are equally specific in several models (`/tags`, present in all three) are
told apart by the ARN they name; `Router.collisions` lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

from emulators.chime.errors import IDENTITY, MEETINGS, MESSAGING, SERVICES


@dataclass(frozen=True)
class Label:
    name: str


@dataclass(frozen=True)
class Member:
    """Where one input or output member lives on the wire."""

    name: str
    wire_name: str
    shape: Shape


@dataclass(frozen=True)
class Operation:
    service: str
    name: str
    model: OperationModel
    method: str
    segments: tuple[str | Label, ...]
    required_query: tuple[tuple[str, str], ...]
    status: int
    input_shape: StructureShape | None
    output_shape: StructureShape | None
    uri_members: tuple[Member, ...] = field(default=())
    query_members: tuple[Member, ...] = field(default=())
    header_members: tuple[Member, ...] = field(default=())
    body_members: tuple[Member, ...] = field(default=())
    output_header_members: tuple[Member, ...] = field(default=())
    output_status_member: str | None = None

    @functools.cached_property
    def specificity(self) -> tuple[int, int]:
        literals = sum(1 for s in self.segments if isinstance(s, str))
        return literals, len(self.required_query)

    @property
    def pattern(self) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]:
        shape = tuple(s if isinstance(s, str) else "{}" for s in self.segments)
        return self.method, shape, self.required_query


@functools.lru_cache(maxsize=1)
def load_service_models() -> dict[str, ServiceModel]:
    session = botocore.session.get_session()
    return {name: session.get_service_model(name) for name in SERVICES}


def _members_by_location(
    shape: StructureShape | None,
) -> dict[str | None, tuple[Member, ...]]:
    grouped: dict[str | None, list[Member]] = {}
    if shape is None:
        return {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "header":
            wire_name = wire_name.lower()
        grouped.setdefault(location, []).append(Member(name, wire_name, member))
    return {location: tuple(members) for location, members in grouped.items()}


def _build_operation(service: str, model: OperationModel) -> Operation:
    uri = model.http["requestUri"]
    path, _, query = uri.partition("?")
    segments: list[str | Label] = []
    for part in path.strip("/").split("/"):
        if part.startswith("{") and part.endswith("}"):
            segments.append(Label(part[1:-1].rstrip("+")))
        elif part:
            segments.append(part)
    required_query = tuple(
        sorted((key, value) for key, _, value in (p.partition("=") for p in query.split("&") if p))
    )
    inputs = _members_by_location(model.input_shape)
    outputs = _members_by_location(model.output_shape)
    status_members = outputs.get("statusCode", ())
    return Operation(
        service=service,
        name=model.name,
        model=model,
        method=model.http["method"],
        segments=tuple(segments),
        required_query=required_query,
        status=int(model.http.get("responseCode", 200)),
        input_shape=model.input_shape,
        output_shape=model.output_shape,
        uri_members=inputs.get("uri", ()),
        query_members=inputs.get("querystring", ()),
        header_members=inputs.get("header", ()),
        body_members=inputs.get(None, ()),
        output_header_members=outputs.get("header", ()),
        output_status_member=status_members[0].name if status_members else None,
    )


@dataclass(frozen=True)
class Match:
    operation: Operation
    labels: dict[str, str]


def service_for_arn(arn: str | None) -> str | None:
    """Which API owns a resource, judged by its ARN (for routes all three share)."""
    if not arn:
        return None
    if ":meeting/" in arn:
        return MEETINGS
    if "/channel/" in arn or ":channel-flow/" in arn:
        return MESSAGING
    if ":app-instance/" in arn:
        return IDENTITY
    return None


class Router:
    def __init__(self, models: Mapping[str, ServiceModel] | None = None) -> None:
        models = models or load_service_models()
        self.operations: dict[tuple[str, str], Operation] = {}
        self._by_shape: dict[tuple[str, int], list[Operation]] = {}
        for service in SERVICES:
            service_model = models[service]
            for name in service_model.operation_names:
                op = _build_operation(service, service_model.operation_model(name))
                self.operations[(service, name)] = op
                self._by_shape.setdefault((op.method, len(op.segments)), []).append(op)
        for candidates in self._by_shape.values():
            candidates.sort(key=lambda op: op.specificity, reverse=True)

    @property
    def collisions(self) -> list[list[Operation]]:
        """Routes that more than one model defines identically."""
        groups: dict[object, list[Operation]] = {}
        for op in self.operations.values():
            groups.setdefault(op.pattern, []).append(op)
        return [ops for ops in groups.values() if len({op.service for op in ops}) > 1]

    def match(
        self,
        method: str,
        raw_path: str,
        query: Mapping[str, Sequence[str]],
        resource_arn: str | None = None,
    ) -> Match | None:
        raw_segments = [s for s in raw_path.strip("/").split("/") if s] if raw_path else []
        best: list[Match] = []
        best_rank: tuple[int, int] | None = None
        for op in self._by_shape.get((method, len(raw_segments)), ()):
            if best_rank is not None and op.specificity < best_rank:
                break
            labels = _bind(op, raw_segments, query)
            if labels is not None:
                best.append(Match(op, labels))
                best_rank = op.specificity
        if not best:
            return None
        if len(best) == 1:
            return best[0]
        owner = service_for_arn(resource_arn)
        for match in best:
            if match.operation.service == owner:
                return match
        # No ARN to go by: the first model in SERVICES order, deterministically.
        return min(best, key=lambda m: SERVICES.index(m.operation.service))


def _bind(
    op: Operation, raw_segments: Sequence[str], query: Mapping[str, Sequence[str]]
) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    for template, raw in zip(op.segments, raw_segments, strict=True):
        if isinstance(template, Label):
            labels[template.name] = unquote(raw)
        elif template != raw:
            return None
    for key, value in op.required_query:
        values = query.get(key)
        if not values or (value and value not in values):
            return None
    return labels
