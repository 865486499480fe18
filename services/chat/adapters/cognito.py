"""`Directory` over a Cognito user pool: the only module of chat that talks to
Cognito. A person is found by their token's `sub` (`ListUsers` with the filter
`sub = "<sub>"`), then their groups are `AdminListGroupsForUser`; the answer
is cached for `cache_seconds` (a role change shows within that time, and a
sweep asks with `fresh=True`). Cognito failures become `ServiceUnavailable`
(503 + Retry-After), never a 500."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import ServiceUnavailable
from shared.logging import get_logger

from ..domain import DirectoryEntry

log = get_logger("belfry.chat")

CACHE_SIZE = 10_000


def sub_filter(user_id: str) -> str:
    """A ListUsers filter for exactly this `sub` (quotes and backslashes escaped)."""
    escaped = user_id.replace("\\", "\\\\").replace('"', '\\"')
    return f'sub = "{escaped}"'


class CognitoDirectory:
    authoritative = True

    def __init__(
        self,
        client: Any,  # an aiobotocore cognito-idp client
        user_pool_id: str,
        *,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.user_pool_id = user_pool_id
        self._ttl = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, DirectoryEntry | None]] = OrderedDict()

    async def find(self, user_id: str, *, fresh: bool = False) -> DirectoryEntry | None:
        cached = self._cache.get(user_id)
        if not fresh and cached is not None and cached[0] > self._clock():
            return cached[1]
        try:
            found = await self._lookup(user_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning("chat.directory_unavailable", error=type(exc).__name__)
            raise ServiceUnavailable(
                "the identity provider is unavailable, try again", code="directory_unavailable"
            ) from exc
        self._cache[user_id] = (self._clock() + self._ttl, found)
        self._cache.move_to_end(user_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return found

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def _lookup(self, user_id: str) -> DirectoryEntry | None:
        if not user_id or len(user_id) > 128:
            return None
        listed = await self._client.list_users(
            UserPoolId=self.user_pool_id, Filter=sub_filter(user_id), Limit=2
        )
        users = [
            u
            for u in listed.get("Users", [])
            if any(
                a.get("Name") == "sub" and a.get("Value") == user_id
                for a in u.get("Attributes", [])
            )
        ]
        if len(users) != 1 or not users[0].get("Enabled", True):
            return None
        username = users[0]["Username"]
        groups: set[str] = set()
        token: str | None = None
        while True:
            page = await self._client.admin_list_groups_for_user(
                UserPoolId=self.user_pool_id,
                Username=username,
                Limit=60,
                **({"NextToken": token} if token else {}),
            )
            groups |= {g["GroupName"] for g in page.get("Groups", [])}
            token = page.get("NextToken")
            if not token:
                return DirectoryEntry(username, frozenset(groups))
