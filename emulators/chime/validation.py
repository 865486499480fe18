"""Check a request's input against the constraints of its botocore shape.

Required members, types, string lengths, list sizes, numeric ranges, enums and
patterns, as the service model states them; timestamps come out as epoch
floats. botocore itself only checks required members, types and minimums on
the client side, so the maximums (e.g. `Metadata` > 1024 characters) are
what callers actually meet here.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from botocore.utils import parse_timestamp

from emulators.chime.errors import bad_request

_MAX_REPORTED = 3


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:  # a Java-only construct: not practical to check
        return None


def _matches(pattern: str, value: str) -> bool:
    compiled = _compiled(pattern)
    if compiled is None:
        return True
    # The models mix whole-value patterns with prefix checks such as
    # '^[0-9a-zA-Z._-]+'; the services match the latter as prefixes.
    if pattern.startswith("^") and not pattern.endswith("$"):
        return compiled.match(value) is not None
    return compiled.fullmatch(value) is not None


def to_epoch(value: Any) -> float:
    """A timestamp as botocore may send it (epoch number, ISO 8601, RFC 822)."""
    if isinstance(value, bool):
        raise ValueError("not a timestamp")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        parsed = parse_timestamp(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    raise ValueError("not a timestamp")


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def check(self, shape: Shape, value: Any, path: str) -> Any:  # noqa: PLR0911
        kind = shape.type_name
        if kind == "structure":
            assert isinstance(shape, StructureShape)
            return self._structure(shape, value, path)
        if kind == "list":
            assert isinstance(shape, ListShape)
            return self._list(shape, value, path)
        if kind == "map":
            assert isinstance(shape, MapShape)
            return self._map(shape, value, path)
        if kind == "string":
            return self._string(shape, value, path)
        if kind in ("integer", "long"):
            return self._number(shape, value, path, integral=True)
        if kind in ("float", "double"):
            return self._number(shape, value, path, integral=False)
        if kind == "boolean":
            if not isinstance(value, bool):
                self.fail(path, "must be a boolean")
            return value
        if kind == "timestamp":
            try:
                return to_epoch(value)
            except (ValueError, TypeError):
                self.fail(path, "must be a timestamp")
                return value
        return value  # blob, document: passed through

    def _structure(self, shape: StructureShape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, "must be a structure")
            return value
        out: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(f"{path}.{name}" if path else name, "is required")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[name] = self.check(member, value[name], f"{path}.{name}" if path else name)
        return out

    def _list(self, shape: ListShape, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            self.fail(path, "must be a list")
            return value
        self._size(shape, len(value), path, "items")
        return [self.check(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]

    def _map(self, shape: MapShape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, "must be a map")
            return value
        self._size(shape, len(value), path, "entries")
        return {
            self.check(shape.key, key, f"{path}.key"): self.check(
                shape.value, item, f"{path}.{key}"
            )
            for key, item in value.items()
        }

    def _string(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self.fail(path, "must be a string")
            return value
        self._size(shape, len(value), path, "characters")
        enum = shape.enum if isinstance(shape, StringShape) else []
        if enum and value not in enum:
            self.fail(path, f"must be one of {', '.join(enum)}")
        pattern = shape.metadata.get("pattern")
        if pattern and not _matches(pattern, value):
            self.fail(path, f"must match the pattern {pattern}")
        return value

    def _number(self, shape: Shape, value: Any, path: str, *, integral: bool) -> Any:
        valid = isinstance(value, int) if integral else isinstance(value, int | float)
        if isinstance(value, bool) or not valid:
            self.fail(path, "must be an integer" if integral else "must be a number")
            return value
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self.fail(path, f"must be at least {low}")
        if high is not None and value > high:
            self.fail(path, f"must be at most {high}")
        return value

    def _size(self, shape: Shape, size: int, path: str, unit: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and size < low:
            self.fail(path, f"has {size} {unit}, fewer than the minimum of {low}")
        if high is not None and size > high:
            self.fail(path, f"has {size} {unit}, more than the maximum of {high}")


def validate(shape: StructureShape | None, value: dict[str, Any]) -> dict[str, Any]:
    """The input, checked and normalised; raises BadRequest naming what is wrong."""
    if shape is None:
        return {}
    checker = _Checker()
    out = checker.check(shape, value, "")
    if checker.errors:
        shown = checker.errors[:_MAX_REPORTED]
        more = len(checker.errors) - len(shown)
        suffix = f" (and {more} more)" if more else ""
        raise bad_request(
            f"{len(checker.errors)} validation error(s) detected: {'; '.join(shown)}{suffix}"
        )
    assert isinstance(out, dict)
    return out
