"""Every operation of the three models routes to itself from botocore's own serialization."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from botocore.model import ListShape, OperationModel, Shape, StructureShape
from botocore.serialize import create_serializer

from emulators.chime.errors import IDENTITY, MEETINGS, MESSAGING, SERVICES
from emulators.chime.routing import Router, load_service_models

ROUTER = Router()
ALL_OPERATIONS = [
    (service, name)
    for service in SERVICES
    for name in load_service_models()[service].operation_names
]
ARNS = {
    IDENTITY: "arn:aws:chime:us-east-1:123456789012:app-instance/a1",
    MEETINGS: "arn:aws:chime:us-east-1:123456789012:meeting/m1",
    MESSAGING: "arn:aws:chime:us-east-1:123456789012:app-instance/a1/channel/c1",
}


def _sample(shape: Shape, service: str, name: str = "") -> Any:
    """A value botocore accepts for `shape`: only what routing needs to be realistic."""
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        return {
            member: _sample(shape.members[member], service, member)
            for member in shape.required_members
        }
    if isinstance(shape, ListShape):
        return [_sample(shape.member, service, name)]
    scalars: dict[str, Any] = {
        "map": {},
        "integer": int(shape.metadata.get("min", 1)),
        "long": int(shape.metadata.get("min", 1)),
        "boolean": True,
        "timestamp": 1_700_000_000,
        "blob": b"x",
    }
    if kind in scalars:
        return scalars[kind]
    enum = getattr(shape, "enum", None)
    if enum:
        return enum[0]
    if "Arn" in name or "ARN" in name:
        return ARNS[service]
    return "a" * max(2, int(shape.metadata.get("min", 2)))


def _serialize(service: str, model: OperationModel) -> dict[str, Any]:
    params = _sample(model.input_shape, service) if model.input_shape else {}
    return dict(create_serializer("rest-json").serialize_to_request(params, model))


@pytest.mark.parametrize(("service", "name"), ALL_OPERATIONS)
def test_each_operation_routes_to_itself(service: str, name: str) -> None:
    model = load_service_models()[service].operation_model(name)
    request = _serialize(service, model)
    path = request["url_path"]
    extra = _query(request)
    url = urlsplit(f"{path}{'&' if '?' in path else '?'}{extra}" if extra else path)
    query = parse_qs(url.query, keep_blank_values=True)
    # The ARN only matters for /tags, the one route that all three models share.
    match = ROUTER.match(request["method"], url.path, query, resource_arn=ARNS[service])
    assert match is not None, f"{service} {name} did not route"
    assert (match.operation.service, match.operation.name) == (service, name)


def _query(request: dict[str, Any]) -> str:
    query = request["query_string"]
    if isinstance(query, str):
        return query
    return urlencode(query, doseq=True)


def test_only_tags_routes_are_shared_between_models() -> None:
    shared = {tuple(sorted({op.name for op in group})) for group in ROUTER.collisions}
    assert shared == {("ListTagsForResource",), ("TagResource",), ("UntagResource",)}


def test_shared_routes_resolve_by_the_arn_they_name() -> None:
    query = {"arn": [ARNS[MEETINGS]]}
    match = ROUTER.match("GET", "/tags", query, resource_arn=ARNS[MEETINGS])
    assert match is not None
    assert match.operation.service == MEETINGS
    anonymous = ROUTER.match("GET", "/tags", {}, resource_arn=None)
    assert anonymous is not None
    assert anonymous.operation.service == IDENTITY


def test_query_discriminators_pick_the_specific_operation() -> None:
    arn = "arn%3Aaws%3Achime%3Aus-east-1%3A1%3Aapp-instance%2Fa%2Fchannel%2Fc"
    plain = ROUTER.match("POST", f"/channels/{arn}/memberships", {})
    batch = ROUTER.match("POST", f"/channels/{arn}/memberships", {"operation": ["batch-create"]})
    assert plain is not None
    assert batch is not None
    assert plain.operation.name == "CreateChannelMembership"
    assert batch.operation.name == "BatchCreateChannelMembership"
    assert plain.labels == {"channelArn": "arn:aws:chime:us-east-1:1:app-instance/a/channel/c"}


def test_unknown_paths_do_not_route() -> None:
    assert ROUTER.match("GET", "/nothing/here", {}) is None
    assert ROUTER.match("PATCH", "/meetings", {}) is None
