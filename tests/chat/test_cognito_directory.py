"""`CognitoDirectory` over a recording stand-in of the cognito-idp client:
finding a user by `sub`, their groups, the brief cache, and failures as 503.
(Over moto's real Cognito: tests/chat/test_role_changes.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from services.chat.adapters.cognito import CognitoDirectory, sub_filter
from shared.errors import ServiceUnavailable


class Pool:
    def __init__(self) -> None:
        self.users = {"sub-1": ("mia", ["manager"]), "sub-2": ("carl", ["customer"])}
        self.calls: list[str] = []
        self.down = False

    async def list_users(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"ListUsers {kwargs['Filter']}")
        if self.down:
            raise ClientError({"Error": {"Code": "InternalErrorException"}}, "ListUsers")
        sub = kwargs["Filter"].split('"')[1]
        found = self.users.get(sub)
        if found is None:
            return {"Users": []}
        attributes = [{"Name": "sub", "Value": sub}]
        return {"Users": [{"Username": found[0], "Attributes": attributes, "Enabled": True}]}

    async def admin_list_groups_for_user(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"AdminListGroupsForUser {kwargs['Username']}")
        name = kwargs["Username"]
        groups = next(g for u, g in self.users.values() if u == name)
        return {"Groups": [{"GroupName": g} for g in groups]}


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_user_is_found_by_sub_and_cached_briefly() -> None:
    pool, clock = Pool(), Clock()
    directory = CognitoDirectory(pool, "us-east-1_x", cache_seconds=30, clock=clock)
    entry = await directory.find("sub-1")
    assert entry is not None
    assert (entry.username, entry.groups) == ("mia", frozenset({"manager"}))
    assert pool.calls == ['ListUsers sub = "sub-1"', "AdminListGroupsForUser mia"]

    pool.users["sub-1"] = ("mia", ["customer"])  # demoted in the pool
    assert (await directory.find("sub-1")).groups == {"manager"}  # type: ignore[union-attr]
    assert len(pool.calls) == 2  # from the cache
    fresh = await directory.find("sub-1", fresh=True)
    assert fresh is not None
    assert fresh.groups == {"customer"}
    clock.now += 31
    pool.users["sub-1"] = ("mia", ["manager"])
    assert (await directory.find("sub-1")).groups == {"manager"}  # type: ignore[union-attr]
    directory.forget("sub-1")
    calls = len(pool.calls)
    await directory.find("sub-1")
    assert len(pool.calls) == calls + 2


async def test_unknown_users_and_odd_ids() -> None:
    pool = Pool()
    directory = CognitoDirectory(pool, "us-east-1_x")
    assert await directory.find("nobody") is None
    assert await directory.find("") is None
    assert sub_filter('a"b\\c') == 'sub = "a\\"b\\\\c"'


async def test_a_pool_that_fails_is_a_503() -> None:
    pool = Pool()
    pool.down = True
    with pytest.raises(ServiceUnavailable) as failed:
        await CognitoDirectory(pool, "us-east-1_x").find("sub-1")
    assert failed.value.error_code == "directory_unavailable"
