"""Who chat knows: callers recorded with their role, and AppInstanceUsers made
when first needed (never on a plain read)."""

from __future__ import annotations

from shared.errors import Forbidden

from .domain import Caller, Person, Role
from .ports import ChatChime, ChatStore

ROLE_CACHE_SIZE = 50_000


class People:
    def __init__(self, store: ChatStore, chime: ChatChime) -> None:
        self.store = store
        self.chime = chime
        self._roles: dict[str, Role] = {}  # who was recorded already, with which role

    async def caller(self, user_id: str, role: Role | None) -> Caller:
        """The caller, recorded with their role (a DynamoDB write the first time,
        never a Chime call: the AppInstanceUser is made when first needed)."""
        if role is None:
            raise Forbidden("chat is for customers and managers", code="no_chat_role")
        if self._roles.get(user_id) != role:
            known = await self.store.person(user_id)
            if known is None or known.role != role:
                await self.store.save_person(Person(user_id, role))
            if len(self._roles) >= ROLE_CACHE_SIZE:  # bounded: forget the oldest half
                for stale in list(self._roles)[: ROLE_CACHE_SIZE // 2]:
                    del self._roles[stale]
            self._roles[user_id] = role
        return Caller(user_id, role)

    async def arn(self, person: Person) -> str:
        """The person's AppInstanceUser, created (and recorded) if missing."""
        if person.arn:
            return person.arn
        arn = await self.chime.ensure_user(person.user_id)
        await self.store.save_person(Person(person.user_id, person.role, arn))
        return arn

    async def arn_of(self, user_id: str, role: Role) -> str:
        known = await self.store.person(user_id)
        return await self.arn(known or Person(user_id, role))
