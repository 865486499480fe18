"""Who chat knows: callers recorded with their role, and AppInstanceUsers made
when first needed (never on a plain read)."""

from __future__ import annotations

from shared.errors import Forbidden

from .domain import ADMIN, CUSTOMER, MANAGER, Caller, Person, Role
from .ports import ChatChime, ChatStore

ROLE_CACHE_SIZE = 50_000
DIRECTORY_LIMIT = 500  # per role: a page of names for suggestions, not a user list


class People:
    def __init__(self, store: ChatStore, chime: ChatChime) -> None:
        self.store = store
        self.chime = chime
        # who was recorded already, with which role and username
        self._known: dict[str, tuple[Role, str | None]] = {}

    async def caller(self, user_id: str, role: Role | None, username: str | None = None) -> Caller:
        """The caller, recorded with their role and username (a DynamoDB write the
        first time, never a Chime call: the AppInstanceUser is made when first needed)."""
        if role is None:
            raise Forbidden("chat is for customers and managers", code="no_chat_role")
        if self._known.get(user_id) != (role, username):
            known = await self.store.person(user_id)
            if known is None or known.role != role or (username and known.username != username):
                await self.store.save_person(Person(user_id, role, username=username))
            if len(self._known) >= ROLE_CACHE_SIZE:  # bounded: forget the oldest half
                for stale in list(self._known)[: ROLE_CACHE_SIZE // 2]:
                    del self._known[stale]
            self._known[user_id] = (role, username)
        return Caller(user_id, role)

    async def directory(self, caller: Caller) -> list[Person]:
        """Whom the caller may address (mention) by name: staff see everyone chat
        knows by name; a customer sees the managers and themselves."""
        roles: tuple[Role, ...] = (MANAGER, ADMIN, CUSTOMER) if caller.is_staff else (MANAGER,)
        found: dict[str, Person] = {}
        for role in roles:
            for person in await self.store.people_with_role(role, DIRECTORY_LIMIT):
                found[person.user_id] = person
        if caller.user_id not in found:
            me = await self.store.person(caller.user_id)
            if me is not None and me.username:
                found[me.user_id] = me
        return sorted(found.values(), key=lambda p: (p.username or "", p.user_id))

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
