"""Leaving a channel by hand (`POST /chat/channels/{channel_id}/leave`).

A manager who joined a channel (by hand, or lazily by being mentioned) may
leave it again: the same ending of a membership as a reassignment's or a lost
role's (`RoleChanges.end_membership`: Chime's `DeleteChannelMembership`, then
the membership row and `ChannelLeft` in one transaction), with reason
`manual`. Leaving is idempotent (not a member: nothing happens). The manager
a customer is assigned to cannot leave that customer's channel (the customer
would talk to nobody): reassign the customer instead. A manager who left
still reads the history as every manager does, gets no more frames of the
channel, and is joined again when mentioned there or on their next post.
"""

from __future__ import annotations

from shared.errors import Conflict, Forbidden
from shared.logging import get_logger

from .channels import Channels
from .domain import MANAGER, Caller
from .roles import RoleChanges

log = get_logger("belfry.chat")


async def leave_channel(
    channels: Channels, roles: RoleChanges, caller: Caller, channel_id: str
) -> bool:
    """End the caller's membership; True if they were a member. 403 `forbidden`
    for anyone but a manager, 404 `channel_not_found`, 409 `assigned_manager`
    for the manager assigned to the customer of that customer channel."""
    if caller.role != MANAGER:
        raise Forbidden("only managers leave channels", code="forbidden")
    channel, is_member = await channels.readable(caller, channel_id)
    if channel.kind == "customer" and channel.manager_id == caller.user_id:
        raise Conflict(
            "the assigned manager cannot leave the customer's channel: reassign the customer",
            code="assigned_manager",
        )
    if not is_member:
        return False
    await roles.end_membership(channel, caller.user_id, "manual")
    log.info("chat.left", channel_id=channel_id, user_id=caller.user_id)
    return True
