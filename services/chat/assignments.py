"""Assigning a customer their manager: both of the customer's channels exist
(the customer channel, the managers-only channel), and the customer channel
moves to the new manager.

Both people are checked first in the identity provider (`RoleChanges.
check_assignment`: the named manager must be a manager, the customer a
customer). Then Chime (users, channels, memberships), then one transaction
with the channel rows, the memberships and their ChannelJoined events (and a
ChannelLeft, `reassignment`, for the manager the customer channel moves away
from). The Chime
memberships this assignment adds or removes (channel creation included) are
compensations of its unit of work: if the commit fails (a concurrent
assignment won, DynamoDB failed), Chime is brought back to what the tables say
for those people, so Chime and chat agree.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from shared.clock import Clock
from shared.errors import Conflict, Unprocessable
from shared.logging import get_logger
from shared.store import Stale

from .channels import channel_view, joined
from .domain import MANAGER, UNASSIGNED, Caller, Channel, channel_id_for
from .people import People
from .ports import ChatChime, ChatStore, ChatWork
from .roles import RoleChanges, left

log = get_logger("belfry.chat")


class Assignments:
    def __init__(
        self,
        store: ChatStore,
        chime: ChatChime,
        people: People,
        roles: RoleChanges,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.chime = chime
        self.people = people
        self.roles = roles
        self.clock = clock

    async def assign(self, caller: Caller, customer_id: str, manager_id: str) -> dict[str, Any]:
        if customer_id == manager_id:
            raise Unprocessable("a customer cannot be their own manager", code="invalid_assignment")
        customer, manager = await self.roles.check_assignment(customer_id, manager_id)
        customer_arn = await self.people.arn(customer)
        manager_arn = await self.people.arn(manager)
        now = int(self.clock())
        async with self.store.work() as work:
            customer_channel, previous = await self._customer_channel(
                work, now, customer=(customer_id, customer_arn), manager=(manager_id, manager_arn)
            )
            managers_channel = await self._managers_channel(
                work, now, customer_id, manager=(manager_id, manager_arn)
            )
            if not work.empty:
                try:
                    await work.commit()
                except Stale:
                    raise Conflict(
                        "the customer was assigned concurrently; retry", code="assignment_changed"
                    ) from None
                log.info(
                    "chat.assigned",
                    customer_id=customer_id,
                    manager_id=manager_id,
                    previous=previous,
                )
        in_customer, in_managers = await asyncio.gather(
            self.store.is_member(customer_channel.channel_id, caller.user_id),
            self.store.is_member(managers_channel.channel_id, caller.user_id),
        )
        return {
            "customer_id": customer_id,
            "manager_id": manager_id,
            "previous_manager_id": previous if previous != manager_id else None,
            "customer_channel": channel_view(customer_channel, is_member=in_customer),
            "managers_channel": channel_view(managers_channel, is_member=in_managers),
        }

    def _joined(self, work: ChatWork, now: int, channel: Channel, user_id: str) -> None:
        work.add_member(channel.channel_id, user_id, "assignment", now)
        work.emit(joined(channel, user_id, "assignment"))

    def _added(self, work: ChatWork, channel: Channel, user_id: str, arn: str) -> None:
        """A Chime membership this work made: taken back should the work not
        commit and the winner's state not have it."""

        async def undo() -> None:
            if not await self.store.is_member(channel.channel_id, user_id):
                await self.chime.remove_member(channel.channel_arn, arn)

        work.compensate(undo)

    def _removed(self, work: ChatWork, channel: Channel, user_id: str, arn: str) -> None:
        """A Chime membership this work took away: given back should the work not
        commit and the store still have it."""

        async def undo() -> None:
            if await self.store.is_member(channel.channel_id, user_id):
                await self.chime.add_member(channel.channel_arn, arn)

        work.compensate(undo)

    async def _create_channel(
        self, work: ChatWork, channel: Channel, members: list[tuple[str, str]]
    ) -> str:
        arn = await self.chime.create_channel(
            channel.channel_id, channel.name, [member_arn for _, member_arn in members]
        )
        for user_id, member_arn in members:
            self._added(work, replace(channel, channel_arn=arn), user_id, member_arn)
        return arn

    async def _customer_channel(
        self,
        work: ChatWork,
        now: int,
        *,
        customer: tuple[str, str],
        manager: tuple[str, str],
    ) -> tuple[Channel, str | None]:
        """Create the customer channel, or move it to the new manager
        (`customer`, `manager`: user id and AppInstanceUser ARN)."""
        customer_id, (manager_id, manager_arn) = customer[0], manager
        channel_id = channel_id_for("customer", customer_id)
        current = await self.store.channel(channel_id)
        if current is None:
            draft = Channel(channel_id, "customer", customer_id, "", manager_id)
            arn = await self._create_channel(work, draft, [customer, manager])
            channel = replace(draft, channel_arn=arn)
            work.save_channel(channel, expected_manager=None)
            self._joined(work, now, channel, customer_id)
            self._joined(work, now, channel, manager_id)
            return channel, None
        previous = current.manager_id
        if previous == manager_id:
            return current, previous
        channel = Channel(channel_id, "customer", customer_id, current.channel_arn, manager_id)
        await self.chime.add_member(channel.channel_arn, manager_arn)
        self._added(work, channel, manager_id, manager_arn)
        if previous:
            old_arn = await self.people.arn_of(previous, MANAGER)
            await self.chime.remove_member(channel.channel_arn, old_arn)
            self._removed(work, channel, previous, old_arn)
            work.remove_member(channel_id, previous)
            work.emit(left(channel, previous, "reassignment"))
        work.save_channel(channel, expected_manager=previous or UNASSIGNED)
        self._joined(work, now, channel, manager_id)
        return channel, previous

    async def _managers_channel(
        self, work: ChatWork, now: int, customer_id: str, *, manager: tuple[str, str]
    ) -> Channel:
        """Create the managers-only channel; the assigned manager is a member."""
        manager_id, manager_arn = manager
        channel_id = channel_id_for("managers", customer_id)
        channel = await self.store.channel(channel_id)
        if channel is None:
            draft = Channel(channel_id, "managers", customer_id, "")
            channel = replace(draft, channel_arn=await self._create_channel(work, draft, [manager]))
            work.save_channel(channel, expected_manager=None)
            self._joined(work, now, channel, manager_id)
        elif not await self.store.is_member(channel_id, manager_id):
            await self.chime.add_member(channel.channel_arn, manager_arn)
            self._added(work, channel, manager_id, manager_arn)
            self._joined(work, now, channel, manager_id)
        return channel
