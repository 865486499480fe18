"""Roles: who the identity provider says a person is, and what happens when a
manager stops being one (docs/chat.md, "Roles and access").

- An assignment names a customer and a manager: both are checked in the
  identity provider (`Directory`: the Cognito user pool; without one, the role
  chat last saw in that person's own token). Unknown people are refused.
- A stored manager who lost the role (noticed on their own call with a token
  without `manager`, on an assignment, or by the sweep that re-checks every
  stored manager in the pool) is recorded with their new role, and each
  membership they may no longer keep is removed: Chime first
  (`DeleteChannelMembership`), then one transaction with the membership row
  and its `ChannelLeft` (`role_lost`). Access itself never waits for this:
  reading and posting look at the caller's token first (`domain.may_read`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from shared.clock import Clock
from shared.events import ChannelJoined, ChannelLeft, Envelope
from shared.logging import get_logger
from shared.runtime import every

from .domain import (
    CUSTOMER,
    MANAGER,
    Channel,
    DirectoryEntry,
    Person,
    Role,
    announce,
    assignment_refusal,
    may_stay,
    role_of,
)
from .metrics import MEMBERSHIPS_ENDED
from .ports import ChatChime, ChatStore, Directory

log = get_logger("belfry.chat")

SWEEP_PAGE = 100


def membership(
    kind: type[ChannelJoined | ChannelLeft], channel: Channel, user_id: str, reason: str
) -> Envelope:
    """The event of `user_id` joining or leaving `channel`, with who may read it."""
    return announce(
        kind(
            channel_id=channel.channel_id,
            channel_arn=channel.channel_arn,
            user_id=user_id,
            reason=reason,
            channel_kind=channel.kind,
            customer_id=channel.customer_id,
        )
    )


def left(channel: Channel, user_id: str, reason: str) -> Envelope:
    return membership(ChannelLeft, channel, user_id, reason)


class RecordedRoles:
    """The fallback `Directory` when no user pool is configured (local HS256
    tokens): the role chat last recorded from the person's own token. Someone
    who never called chat is unknown (None), and so is refused."""

    authoritative = False

    def __init__(self, store: ChatStore) -> None:
        self.store = store

    async def find(self, user_id: str, *, fresh: bool = False) -> DirectoryEntry | None:
        person = await self.store.person(user_id)
        return None if person is None else DirectoryEntry(person.username, frozenset({person.role}))

    def forget(self, user_id: str) -> None:
        return None  # nothing cached


class RoleChanges:
    def __init__(
        self,
        store: ChatStore,
        chime: ChatChime,
        directory: Directory,
        *,
        sweep_interval_seconds: float = 300.0,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.chime = chime
        self.directory = directory
        self.sweep_interval_seconds = sweep_interval_seconds
        self.clock = clock

    # --- assignments ------------------------------------------------------------

    async def check_assignment(self, customer_id: str, manager_id: str) -> tuple[Person, Person]:
        """The customer and the manager as chat then knows them, once the
        identity provider says they are a customer and a manager; else 422
        `not_a_customer` / `not_a_manager` (`details.reason`: `unknown_user`,
        `wrong_role`)."""
        found = await asyncio.gather(
            self.directory.find(customer_id), self.directory.find(manager_id)
        )
        known = await self.store.people([customer_id, manager_id])
        if self.directory.authoritative:  # what the pool says is news: keep it
            for user_id, entry in zip((customer_id, manager_id), found, strict=True):
                if entry is not None:
                    await self._observed(known.get(user_id), user_id, entry)
            known = await self.store.people([customer_id, manager_id])
        customer_groups, manager_groups = (e.groups if e else None for e in found)
        for refusal in (
            assignment_refusal(customer_id, CUSTOMER, customer_groups),
            assignment_refusal(manager_id, MANAGER, manager_groups),
        ):
            if refusal is not None:
                raise refusal
        customer = known.get(customer_id) or Person(customer_id, CUSTOMER)
        manager = known.get(manager_id) or Person(manager_id, MANAGER)
        return replace(customer, role=CUSTOMER), replace(manager, role=MANAGER)

    async def _observed(self, known: Person | None, user_id: str, entry: DirectoryEntry) -> None:
        """Record the role (and username: the sweep finds people by it) the
        pool gives; a recorded manager it no longer calls one lost the role."""
        role: Role | None = role_of(entry.groups)
        if role is None:
            role = CUSTOMER if known is not None and known.role == MANAGER else None
        username = entry.username or (known.username if known else None)
        if role is None or (known is not None and (known.role, known.username) == (role, username)):
            return
        person = Person(user_id, role, username=username)
        if known is not None and known.role == MANAGER and role != MANAGER:
            await self.lost(person)
        else:
            await self.store.save_person(person)

    # --- a promotion: believe the token only if the identity provider does ------

    async def confirms_manager(self, user_id: str) -> bool:
        if not self.directory.authoritative:
            return True  # no pool: the token is all chat has
        entry = await self.directory.find(user_id)
        return entry is not None and role_of(entry.groups) == MANAGER

    # --- a lost role ----------------------------------------------------------------

    async def lost(self, person: Person) -> int:
        """`person` (with their new role) is no manager any more: end every
        membership they may not keep, then record the role. A failure leaves
        the old role recorded, so the next notice (or sweep) tries again."""
        self.directory.forget(person.user_id)  # the pool's cached answer is older
        ended = 0
        for channel_id in sorted(await self.store.channels_of(person.user_id)):
            channel = await self.store.channel(channel_id)
            if channel is not None and not may_stay(channel, person.role, person.user_id):
                await self.end_membership(channel, person.user_id, "role_lost")
                ended += 1
        await self.store.save_person(person)
        log.info("chat.role_lost", user_id=person.user_id, role=person.role, memberships=ended)
        return ended

    async def enforce(self, channel_id: str, user_id: str) -> bool:
        """A membership recorded from elsewhere (a lazy join that raced a lost
        role): ended at once if the person's recorded role may not keep it."""
        channel, person = await asyncio.gather(
            self.store.channel(channel_id), self.store.person(user_id)
        )
        if channel is None or person is None or may_stay(channel, person.role, user_id):
            return False
        if not await self.store.is_member(channel_id, user_id):
            return False
        await self.end_membership(channel, user_id, "role_lost")
        return True

    async def end_membership(self, channel: Channel, user_id: str, reason: str) -> None:
        """Chime's membership, then the row and `ChannelLeft` in one transaction;
        a customer channel whose assigned manager this was has none after it."""
        person = await self.store.person(user_id)
        arn = person.arn if person is not None and person.arn else self.chime.user_arn(user_id)
        async with self.store.work() as work:
            await self.chime.remove_member(channel.channel_arn, arn)

            async def undo() -> None:
                if await self.store.is_member(channel.channel_id, user_id):
                    await self.chime.add_member(channel.channel_arn, arn)

            work.compensate(undo)
            work.remove_member(channel.channel_id, user_id)
            if channel.kind == "customer" and channel.manager_id == user_id:
                work.save_channel(replace(channel, manager_id=None), expected_manager=user_id)
            work.emit(left(channel, user_id, reason))
            await work.commit()
        MEMBERSHIPS_ENDED.labels(reason).inc()
        log.info(
            "chat.membership_ended", channel_id=channel.channel_id, user_id=user_id, reason=reason
        )

    # --- the sweep ------------------------------------------------------------------

    async def sweep(self) -> int:
        """Re-check every recorded manager in the identity provider (uncached);
        returns how many lost the role. Nothing to do without a user pool."""
        if not self.directory.authoritative:
            return 0
        changed = 0
        cursor: str | None = None
        while True:
            page, cursor = await self.store.people_page(MANAGER, cursor, SWEEP_PAGE)
            for person in page:
                entry = await self.directory.find(person.user_id, fresh=True)
                role = role_of(entry.groups) if entry is not None else None
                if role != MANAGER:
                    # no chat role left (or no such user): the least access, customer
                    await self.lost(replace(person, role=role or CUSTOMER))
                    changed += 1
            if not cursor:
                break
        if changed:
            log.info("chat.roles_swept", lost=changed)
        return changed

    async def run_sweeper(self) -> None:
        """A background loop of every replica (each step is idempotent)."""
        await every(self.sweep_interval_seconds, self.sweep, name="chat.role_sweep")
