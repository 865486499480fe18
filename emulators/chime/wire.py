"""REST-JSON on the wire: request members in, response members and errors out.

Reads each input member from where the model puts it (URI label, query
string, header, JSON body) and writes output members the same way, so that
botocore's rest-json parser finds everything where it looks.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.model import ListShape, Shape

from emulators.chime.errors import (
    MEETINGS,
    ChimeError,
    Kind,
    bad_request,
    body_code,
    exception_name,
    fallback_status,
)
from emulators.chime.routing import Operation, load_service_models
from emulators.chime.validation import to_epoch, validate

_CREDENTIAL_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class WireResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def region_of(headers: Mapping[str, str]) -> str:
    """The region a SigV4 signature was made for (any signature is accepted)."""
    found = _CREDENTIAL_REGION.search(headers.get("authorization", ""))
    return found.group(1) if found else DEFAULT_REGION


def _from_text(shape: Shape, text: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "timestamp":
            return to_epoch(text)
    except ValueError as exc:
        raise bad_request(f"{text!r} is not a valid {kind}") from exc
    if kind == "boolean":
        if text not in ("true", "false"):
            raise bad_request(f"{text!r} is not a valid boolean")
        return text == "true"
    return text


def _from_texts(shape: Shape, values: Sequence[str]) -> Any:
    if isinstance(shape, ListShape):
        return [_from_text(shape.member, value) for value in values]
    return _from_text(shape, values[0])


def parse_input(
    op: Operation,
    labels: Mapping[str, str],
    query: Mapping[str, Sequence[str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """The operation's input members, validated against the model."""
    raw: dict[str, Any] = {}
    for member in op.uri_members:
        if member.wire_name in labels:
            raw[member.name] = _from_text(member.shape, labels[member.wire_name])
    for member in op.query_members:
        values = query.get(member.wire_name)
        if values:
            raw[member.name] = _from_texts(member.shape, values)
    for member in op.header_members:
        if member.wire_name in headers:
            value = headers[member.wire_name]
            is_list = isinstance(member.shape, ListShape)
            items = [v.strip() for v in value.split(",")] if is_list else [value]
            raw[member.name] = _from_texts(member.shape, items)
    if op.body_members and body.strip():
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise bad_request("the request body is not valid JSON") from exc
        if not isinstance(document, dict):
            raise bad_request("the request body must be a JSON object")
        for member in op.body_members:
            if member.wire_name in document:
                raw[member.name] = document[member.wire_name]
    return validate(op.input_shape, raw)


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def render_output(op: Operation, result: Mapping[str, Any], request_id: str) -> WireResponse:
    headers = {"x-amzn-requestid": request_id}
    status = op.status
    body_doc = dict(result)
    for member in op.output_header_members:
        if member.name in body_doc:
            headers[member.wire_name] = str(body_doc.pop(member.name))
    if op.output_status_member and op.output_status_member in body_doc:
        status = int(body_doc.pop(op.output_status_member))
    if status == 204 or not (op.output_shape and op.output_shape.members):
        return WireResponse(status, headers, b"")
    headers["content-type"] = "application/json"
    return WireResponse(status, headers, _dumps(body_doc))


@functools.lru_cache(maxsize=64)
def _status_for(kind: Kind, service: str | None) -> int:
    if service is not None:
        name = exception_name(kind, service)
        for shape in load_service_models()[service].error_shapes:
            if shape.name == name:
                return int(shape.metadata["error"]["httpStatusCode"])
    return fallback_status(kind)


def render_error(
    error: ChimeError, service: str | None, request_id: str | None = None
) -> WireResponse:
    """Chime's error form: status from the model, `x-amzn-ErrorType`, {Code, Message}."""
    request_id = request_id or str(uuid.uuid4())
    name = exception_name(error.kind, service)
    body: dict[str, Any] = {"Code": body_code(error.kind, service), "Message": error.message}
    if service == MEETINGS:
        body["RequestId"] = request_id
    headers = {
        "x-amzn-requestid": request_id,
        "x-amzn-errortype": name,
        "content-type": "application/json",
    }
    return WireResponse(_status_for(error.kind, service), headers, _dumps(body))
