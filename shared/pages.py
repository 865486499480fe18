"""Page cursors: a Query's `LastEvaluatedKey` as an opaque token, and back.

Every listing (`GET /schedule`, `/chat/channels`, history, mentions) hands out
the same kind of token and checks it the same way before it becomes an
`ExclusiveStartKey`: exactly the listing's key attributes, each a short string
or number, and the attributes that pin the listing (its partition: the
caller's user, the channel, the phase) equal to this request's. Anything else
is a 400 `invalid_cursor`, never a DynamoDB error or another user's page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shared.errors import BadRequest

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

MAX_VALUE_CHARS = 1024


class InvalidCursor(BadRequest):
    code = "invalid_cursor"


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    """The token of a `LastEvaluatedKey` (None: the last page)."""
    if not key:
        return None
    raw = json.dumps(dict(key), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str | None, *, names: Iterable[str], fixed: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The `ExclusiveStartKey` of a token this listing made, or None for no
    cursor. `names`: the key attributes (table and index keys); `fixed`: those
    whose value this request determines."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidCursor("the cursor is not one this listing returned") from None
    if not (
        isinstance(key, dict)
        and set(key) == set(names)
        and all(_is_key_value(v) for v in key.values())
        and all(_plain(key.get(n)) == v for n, v in (fixed or {}).items())
    ):
        raise InvalidCursor("the cursor is not one this listing returned")
    return key


def _is_key_value(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, text),) = value.items()
    return kind in ("S", "N") and isinstance(text, str) and 0 < len(text) <= MAX_VALUE_CHARS


def _plain(value: Any) -> Any:
    return next(iter(value.values())) if isinstance(value, dict) and len(value) == 1 else None


async def query_page(
    client: DynamoDBClient,
    cursor: str | None,
    *,
    names: Iterable[str],
    fixed: Mapping[str, str] | None = None,
    **query: Any,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a Query from this listing's cursor: its items (raw) and the
    cursor of the next page (None after the last)."""
    start = decode_cursor(cursor, names=names, fixed=fixed)
    if start:
        query["ExclusiveStartKey"] = start
    response: dict[str, Any] = await client.query(**query)  # type: ignore[assignment]
    return list(response.get("Items", [])), encode_cursor(response.get("LastEvaluatedKey"))
