"""Roles before membership, over recording fakes (tests/chat/fakes.py): who may
be assigned (the identity provider decides), what a stored membership can no
longer grant, and what happens when a manager stops being one (noticed on
their own call, by an assignment, by the sweep, or after a racing lazy join)."""

from __future__ import annotations

from typing import Any

import pytest

from services.chat.handlers import HANDLERS, MEMBERSHIP_QUEUE
from shared.errors import NotFound, ServiceUnavailable, Unprocessable
from shared.events import ChannelJoined, Envelope
from shared.topology import wire

from .fakes import ADMIN, FakeChat, FakeDirectory, Membership, build_chat, customer, manager


def pool(chat: FakeChat) -> FakeDirectory:
    assert isinstance(chat.directory, FakeDirectory)
    return chat.directory


async def assigned() -> FakeChat:
    """c1 assigned to m1; m2 (a manager) mentioned into c1's managers channel,
    so that m1, m2 are members of it; c1 and m1 have each posted."""
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    await chat.people.caller("m2", "manager", "m2-name")
    await chat.channels.join(manager("m2"), "managers-c1")
    await chat.messages.post(customer("c1"), "customer-c1", "hi", [], [])
    await chat.messages.post(manager("m1"), "managers-c1", "about c1", [], [])
    chat.store.published.clear()
    return chat


def arns(chat: FakeChat, *users: str) -> set[str]:
    return {chat.chime.user_arn(u) for u in users}


def members_in_chime(chat: FakeChat, channel_id: str) -> set[str]:
    return chat.chime.members(chat.store.channels[channel_id].channel_arn)


def code_of(refused: pytest.ExceptionInfo[Any]) -> tuple[str, Any]:
    error = refused.value
    return error.error_code, error.details


# --- assignment: the identity provider decides --------------------------------------------


async def test_a_customer_is_never_assigned_as_a_manager() -> None:
    chat = build_chat()
    pool(chat).set("carol", "customer")
    with pytest.raises(Unprocessable) as refused:
        await chat.assignments.assign(ADMIN, "c1", "carol")
    code, details = code_of(refused)
    assert code == "not_a_manager"
    assert details == {"user_id": "carol", "reason": "wrong_role", "role": "customer"}
    assert (chat.chime.calls, chat.store.channels, chat.store.published) == ([], {}, [])
    assert chat.store.users["carol"].role == "customer"  # what the pool said, recorded


async def test_an_id_nobody_knows_is_no_manager_and_no_customer() -> None:
    chat = build_chat()
    with pytest.raises(Unprocessable) as refused:
        await chat.assignments.assign(ADMIN, "c1", "ghost")
    assert code_of(refused) == ("not_a_manager", {"user_id": "ghost", "reason": "unknown_user"})
    with pytest.raises(Unprocessable) as refused:
        await chat.assignments.assign(ADMIN, "ghost", "m1")
    assert code_of(refused)[0] == "not_a_customer"
    assert (chat.chime.calls, chat.store.channels) == ([], {})


async def test_the_pool_outranks_what_chat_recorded() -> None:
    """A manager chat recorded who is a customer in the pool now is refused,
    and the loss is acted upon at once."""
    chat = await assigned()
    pool(chat).set("m2", "customer")
    with pytest.raises(Unprocessable) as refused:
        await chat.assignments.assign(ADMIN, "c2", "m2")
    assert code_of(refused)[0] == "not_a_manager"
    assert chat.store.users["m2"].role == "customer"
    assert "m2" not in chat.store.members("managers-c1")
    assert [e.data.reason for e in chat.events("ChannelLeft", user_id="m2")] == ["role_lost"]


async def test_a_pool_that_does_not_answer_is_a_503_and_nothing_is_made() -> None:
    chat = build_chat()
    pool(chat).failing = True
    with pytest.raises(ServiceUnavailable):
        await chat.assignments.assign(ADMIN, "c1", "m1")
    assert (chat.chime.calls, chat.store.channels) == ([], {})


async def test_without_a_pool_the_role_is_the_one_seen_in_the_persons_own_token() -> None:
    chat = build_chat(directory="recorded")
    with pytest.raises(Unprocessable) as refused:  # neither ever called chat
        await chat.assignments.assign(ADMIN, "c1", "m1")
    assert code_of(refused)[1]["reason"] == "unknown_user"
    await chat.people.caller("c1", "customer")
    await chat.people.caller("m1", "customer")  # m1's token says customer
    with pytest.raises(Unprocessable) as refused:
        await chat.assignments.assign(ADMIN, "c1", "m1")
    assert code_of(refused)[1]["reason"] == "wrong_role"
    await chat.people.caller("m1", "manager")  # now it says manager
    result = await chat.assignments.assign(ADMIN, "c1", "m1")
    assert result["manager_id"] == "m1"


# --- a membership grants nothing the token does not ------------------------------------------


async def test_a_stray_membership_row_does_not_let_a_customer_in() -> None:
    """A customer in the managers channel's member table (as the old "unknown
    id = manager" let happen) still reads and posts nothing there."""
    chat = await assigned()
    chat.store.memberships["managers-c1", "c2"] = Membership("assignment", 0)
    chat.store.memberships["customer-c1", "c2"] = Membership("assignment", 0)
    for channel_id in ("managers-c1", "customer-c1"):
        with pytest.raises(NotFound):
            await chat.messages.history(customer("c2"), channel_id, None)
        with pytest.raises(NotFound):
            await chat.messages.post(customer("c2"), channel_id, "let me in", [], [])
    listed = await chat.channels.list(customer("c2"), None)
    assert listed["channels"] == []


async def test_an_admin_without_the_manager_group_never_sees_a_managers_channel() -> None:
    chat = await assigned()
    with pytest.raises(NotFound):
        await chat.messages.history(ADMIN, "managers-c1", None)
    page = await chat.messages.history(ADMIN, "customer-c1", None)
    assert [m["content"] for m in page["messages"]] == ["hi"]
    listed = await chat.channels.list(ADMIN, None)
    assert {c["channel_id"] for c in listed["channels"]} == {"customer-c1"}


# --- a manager who lost the role ------------------------------------------------------------


def assert_role_lost(chat: FakeChat, user_id: str, channels: set[str]) -> None:
    assert chat.store.users[user_id].role == "customer"
    for channel_id in channels:
        assert user_id not in chat.store.members(channel_id)
        assert chat.chime.user_arn(user_id) not in members_in_chime(chat, channel_id)
    gone = chat.events("ChannelLeft", user_id=user_id)
    assert {e.data.channel_id for e in gone} == channels
    assert {e.data.reason for e in gone} == {"role_lost"}
    assert {e.producer for e in gone} == {"chat"}


async def test_a_demoted_manager_is_noticed_on_their_own_call() -> None:
    chat = await assigned()
    demoted = await chat.people.caller("m1", "customer")  # their new token

    assert_role_lost(chat, "m1", {"customer-c1", "managers-c1"})
    assert members_in_chime(chat, "managers-c1") == arns(chat, "m2")
    assert members_in_chime(chat, "customer-c1") == arns(chat, "c1")
    assert chat.store.channels["customer-c1"].manager_id is None
    for channel_id in ("managers-c1", "customer-c1"):
        with pytest.raises(NotFound):
            await chat.messages.history(demoted, channel_id, None)
    # they cannot be mentioned into a managers channel any more
    with pytest.raises(Unprocessable) as refused:
        await chat.messages.post(manager("m2"), "managers-c1", "@m1?", ["m1"], [])
    assert refused.value.details == [{"user_id": "m1", "reason": "not_a_manager"}]
    # noticing again changes nothing
    chat.store.published.clear()
    await chat.people.caller("m1", "customer")
    assert chat.store.published == []


async def test_the_customer_of_a_demoted_manager_can_be_assigned_again() -> None:
    chat = await assigned()
    await chat.people.caller("m1", "customer")
    result = await chat.assignments.assign(ADMIN, "c1", "m3")
    assert result["previous_manager_id"] is None
    assert chat.store.channels["customer-c1"].manager_id == "m3"
    assert members_in_chime(chat, "customer-c1") == arns(chat, "c1", "m3")
    assert chat.events("ChannelLeft", reason="reassignment") == []


async def test_the_sweep_finds_managers_the_pool_demoted() -> None:
    chat = await assigned()
    pool(chat).set("m2", "customer")
    pool(chat).pool.pop("m1")  # m1 was deleted from the pool
    assert await chat.roles.sweep() == 2
    assert_role_lost(chat, "m2", {"managers-c1"})
    assert_role_lost(chat, "m1", {"customer-c1", "managers-c1"})
    assert all(fresh for _, fresh in pool(chat).calls[-2:])  # the sweep skips the cache
    chat.store.published.clear()
    assert await chat.roles.sweep() == 0  # nobody left to demote
    assert chat.store.published == []


async def test_the_sweep_has_nothing_to_ask_without_a_pool() -> None:
    chat = build_chat(directory="recorded")
    await chat.people.caller("m1", "manager")
    assert await chat.roles.sweep() == 0


async def test_a_membership_end_that_fails_is_tried_again_on_the_next_call() -> None:
    chat = await assigned()
    chat.chime.fail("remove_member")
    await chat.people.caller("m1", "customer")  # the request still goes on
    assert chat.store.users["m1"].role == "manager"  # not recorded: try again
    await chat.people.caller("m1", "customer")
    assert_role_lost(chat, "m1", {"customer-c1", "managers-c1"})


async def test_a_token_that_says_manager_is_not_recorded_unless_the_pool_agrees() -> None:
    chat = await assigned()
    pool(chat).set("m1", "customer")
    await chat.people.caller("m1", "customer")
    stale = await chat.people.caller("m1", "manager")  # an old token, still valid
    assert stale.role == "manager"  # the token decides this request ...
    assert chat.store.users["m1"].role == "customer"  # ... not what chat records
    pool(chat).set("m1", "manager")  # promoted again for real
    await chat.people.caller("m1", "manager")
    recorded: str = chat.store.users["m1"].role
    assert recorded == "manager"


async def test_a_lazy_join_that_raced_the_lost_role_is_ended() -> None:
    chat = await assigned()
    await chat.people.caller("m2", "customer")
    (subscription,) = wire(HANDLERS, channels=chat.channels, roles=chat.roles)
    join = ChannelJoined(
        channel_id="managers-c1",
        channel_arn=chat.store.channels["managers-c1"].channel_arn,
        user_id="m2",
        reason="mention",
    )
    chat.store.published.clear()
    await subscription.handlers[ChannelJoined.TYPE](Envelope.new(join, producer="notifier"))
    assert "m2" not in chat.store.members("managers-c1")
    assert [e.data.reason for e in chat.events("ChannelLeft", user_id="m2")] == ["role_lost"]
    assert chat.store.log[-2:] == ["written", "written"]  # recorded, then ended
    assert any(queue == MEMBERSHIP_QUEUE for queue, _ in chat.store.inbox)


async def test_a_manager_reassigned_away_leaves_the_customer_channel() -> None:
    chat = await assigned()
    await chat.assignments.assign(ADMIN, "c1", "m2")
    (gone,) = chat.events("ChannelLeft")
    assert (gone.data.user_id, gone.data.channel_id, gone.data.reason) == (
        "m1",
        "customer-c1",
        "reassignment",
    )
    assert "m1" not in chat.store.members("customer-c1")
    assert chat.chime.user_arn("m1") not in members_in_chime(chat, "customer-c1")
    listed = await chat.channels.list(manager("m1"), None)
    mine = {c["channel_id"]: c["is_member"] for c in listed["channels"]}
    assert mine == {"customer-c1": False, "managers-c1": True}
