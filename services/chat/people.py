"""Who chat knows: callers recorded with their role, and AppInstanceUsers made
when first needed (never on a plain read)."""

from __future__ import annotations

from shared.errors import BelfryError, Forbidden
from shared.logging import get_logger

from .domain import ADMIN, CUSTOMER, MANAGER, Caller, Person, Role
from .ports import ChatChime, ChatStore
from .roles import RoleChanges

log = get_logger("belfry.chat")

ROLE_CACHE_SIZE = 50_000
DIRECTORY_LIMIT = 500  # per role: a page of names for suggestions, not a user list


class People:
    def __init__(self, store: ChatStore, chime: ChatChime, roles: RoleChanges) -> None:
        self.store = store
        self.chime = chime
        self.roles = roles
        # who was recorded already, with which role and username
        self._known: dict[str, tuple[Role, str | None]] = {}

    async def caller(self, user_id: str, role: Role | None, username: str | None = None) -> Caller:
        """The caller, recorded with their role and username (a DynamoDB write the
        first time, never a Chime call: the AppInstanceUser is made when first needed)."""
        if role is None:
            raise Forbidden("chat is for customers and managers", code="no_chat_role")
        if self._known.get(user_id) != (role, username) and await self._record(
            user_id, role, username
        ):
            if len(self._known) >= ROLE_CACHE_SIZE:  # bounded: forget the oldest half
                for stale in list(self._known)[: ROLE_CACHE_SIZE // 2]:
                    del self._known[stale]
            self._known[user_id] = (role, username)
        return Caller(user_id, role)

    async def _record(self, user_id: str, role: Role, username: str | None) -> bool:
        """Record what the caller's token says; True once chat's record agrees.
        A recorded manager whose token lacks `manager` lost the role: their
        memberships end (`RoleChanges.lost`). A token that says `manager` of
        someone not recorded as one is recorded only if the identity provider
        agrees. The request itself is decided by the token either way."""
        known = await self.store.person(user_id)
        if (
            known is not None
            and known.role == role
            and (not username or known.username == username)
        ):
            return True
        person = Person(user_id, role, username=username or (known.username if known else None))
        if known is not None and known.role != role:
            self.roles.directory.forget(user_id)  # what the pool said before is stale
        try:
            if known is not None and known.role == MANAGER and role != MANAGER:
                await self.roles.lost(person)
                return True
            promoted = role == MANAGER and (known is None or known.role != MANAGER)
            if promoted and not await self.roles.confirms_manager(user_id):
                log.warning("chat.manager_unconfirmed", user_id=user_id)
                return False
        except BelfryError as exc:  # tried again on the next call, and by the sweep
            log.warning("chat.role_change_deferred", user_id=user_id, error=exc.error_code)
            return False
        await self.store.save_person(person)
        return True

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
