"""What a handler gets (`Call`) and the paging every List operation shares."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from emulators.chime.errors import bad_request
from emulators.chime.sessions import ChannelEvent

T = TypeVar("T")
Output = dict[str, Any]


@dataclass
class Call:
    """One request to one operation, as a handler sees it."""

    operation: str
    input: dict[str, Any]
    now: float
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    events: list[ChannelEvent] = field(default_factory=list)

    def get(self, name: str, default: Any = None) -> Any:
        return self.input.get(name, default)


Handler = Callable[[Call], Output]


def _encode_token(scope: str, after: Any) -> str:
    raw = json.dumps({"scope": scope, "after": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, scope: str) -> Any:
    try:
        padded = token + "=" * (-len(token) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as exc:
        raise bad_request("the NextToken is not valid") from exc
    if not isinstance(document, dict) or document.get("scope") != scope:
        raise bad_request("the NextToken does not belong to this request")
    return document.get("after")


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def paginate(
    items: Sequence[T],
    call: Call,
    *,
    key: Callable[[T], Any],
    scope: str,
    default_max: int,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """A page of `items` (already in order, with unique keys) and the next token.

    The token names the key of the last item returned, not an offset, so items
    created or deleted between pages neither repeat nor vanish from the walk.
    """
    start = 0
    token = call.get("NextToken")
    if token:
        after = _comparable(_decode_token(token, scope))
        start = len(items)
        for index, item in enumerate(items):
            item_key = _comparable(key(item))
            if (item_key < after) if descending else (item_key > after):
                start = index
                break
    limit = call.get("MaxResults") or default_max
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    last = key(page[-1]) if page else None
    next_token = _encode_token(scope, list(last) if isinstance(last, tuple) else last)
    return page, (next_token if more and page else None)
