"""Who is calling: the verified identity that handlers receive, and the verifier port."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

ADMIN: Final = "admin"
MANAGER: Final = "manager"
CUSTOMER: Final = "customer"
KNOWN_GROUPS: Final = frozenset({ADMIN, MANAGER, CUSTOMER})


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller. `user_id` is the token's `sub`; groups come from `cognito:groups`."""

    user_id: str
    username: str | None = None
    groups: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.groups

    @property
    def is_manager(self) -> bool:
        return MANAGER in self.groups

    @property
    def is_customer(self) -> bool:
        return CUSTOMER in self.groups

    def has_any(self, *groups: str) -> bool:
        return not self.groups.isdisjoint(groups)


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """Return the token's principal, or raise `shared.errors.Unauthorized`."""
        ...
