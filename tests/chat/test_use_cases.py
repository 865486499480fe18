"""chat's use cases over recording fakes (tests/chat/fakes.py): assignments,
the channel list and the ChannelJoined handler. Chime and the tables must
agree after every outcome, failures included."""

from __future__ import annotations

import pytest

from services.chat.handlers import HANDLERS, MEMBERSHIP_QUEUE
from services.chat.settings import ChatSettings
from shared.bus import RejectEvent
from shared.errors import Conflict, Unprocessable
from shared.events import ChannelJoined, Envelope
from shared.topology import wire

from .fakes import ADMIN, FakeChat, build_chat, customer, manager


def agree(chat: FakeChat, channel_id: str) -> tuple[set[str], set[str]]:
    """(Chime's members, the store's members) of a channel, both as user ARNs."""
    channel = chat.store.channels[channel_id]
    in_store = {chat.chime.user_arn(u) for u in chat.store.members(channel_id)}
    return chat.chime.members(channel.channel_arn), in_store


def arns(chat: FakeChat, *user_ids: str) -> set[str]:
    return {chat.chime.user_arn(u) for u in user_ids}


# --- assignments -----------------------------------------------------------------------


async def test_a_first_assignment_makes_both_channels() -> None:
    chat = build_chat()
    result = await chat.assignments.assign(ADMIN, "c1", "m1")

    customer_arn = result["customer_channel"]["channel_arn"]
    managers_arn = result["managers_channel"]["channel_arn"]
    assert chat.chime.members(customer_arn) == arns(chat, "c1", "m1")
    assert chat.chime.members(managers_arn) == arns(chat, "m1")
    assert chat.store.members("customer-c1") == {"c1", "m1"}
    assert chat.store.members("managers-c1") == {"m1"}
    assert chat.store.channels["customer-c1"].manager_id == "m1"
    joins = chat.events("ChannelJoined")
    assert sorted((e.data.channel_id, e.data.user_id) for e in joins) == [
        ("customer-c1", "c1"),
        ("customer-c1", "m1"),
        ("managers-c1", "m1"),
    ]
    assert {e.data.reason for e in joins} == {"assignment"}
    assert {e.producer for e in joins} == {"chat"}
    assert result["previous_manager_id"] is None
    assert result["customer_channel"]["is_member"] is False  # the admin is not in it
    assert chat.store.users["c1"].role == "customer"
    assert chat.store.users["m1"].arn == chat.chime.user_arn("m1")


async def test_assigning_the_same_manager_again_changes_nothing() -> None:
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    log, calls = list(chat.store.log), len(chat.chime.calls)
    result = await chat.assignments.assign(ADMIN, "c1", "m1")
    assert result["previous_manager_id"] is None
    assert chat.store.log == log  # no transaction
    assert chat.chime.called("add_member") == []
    assert len(chat.chime.calls) == calls
    assert len(chat.events("ChannelJoined")) == 3


async def test_reassigning_moves_the_customer_channel() -> None:
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    chat.store.published.clear()

    result = await chat.assignments.assign(ADMIN, "c1", "m2")

    assert result["previous_manager_id"] == "m1"
    assert result["customer_channel"]["manager_id"] == "m2"
    customer_arn = chat.store.channels["customer-c1"].channel_arn
    assert chat.chime.members(customer_arn) == arns(chat, "c1", "m2")
    assert chat.store.members("customer-c1") == {"c1", "m2"}
    assert chat.store.channels["customer-c1"].manager_id == "m2"
    assert chat.store.members("managers-c1") == {"m1", "m2"}
    in_chime, in_store = agree(chat, "managers-c1")
    assert in_chime == in_store == arns(chat, "m1", "m2")
    joins = chat.events("ChannelJoined", user_id="m2", reason="assignment")
    assert sorted(e.data.channel_id for e in joins) == ["customer-c1", "managers-c1"]
    (gone,) = chat.events("ChannelLeft")
    assert (gone.data.channel_id, gone.data.user_id, gone.data.reason) == (
        "customer-c1",
        "m1",
        "reassignment",
    )
    assert (gone.data.channel_kind, gone.data.customer_id) == ("customer", "c1")
    assert len(chat.store.published) == 3


async def test_a_customer_cannot_be_their_own_manager() -> None:
    chat = build_chat()
    with pytest.raises(Unprocessable) as refused:
        await chat.assignments.assign(ADMIN, "c1", "c1")
    assert refused.value.error_code == "invalid_assignment"
    assert (chat.chime.calls, chat.store.log, chat.store.channels) == ([], [], {})


async def test_a_known_manager_is_not_a_customer() -> None:
    chat = build_chat()
    await chat.people.caller("m1", "manager")
    with pytest.raises(Unprocessable) as refused:
        await chat.assignments.assign(ADMIN, "m1", "m2")
    assert refused.value.error_code == "not_a_customer"
    await chat.people.caller("c2", "customer")
    with pytest.raises(Unprocessable) as refused:
        await chat.assignments.assign(ADMIN, "c1", "c2")
    assert refused.value.error_code == "not_a_manager"
    assert (chat.chime.calls, chat.store.channels) == ([], {})


async def test_a_concurrent_reassignment_that_wins_takes_back_what_this_one_added() -> None:
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    chat.store.published.clear()
    winner: dict[str, object] = {}

    async def rival() -> None:
        winner.update(await chat.assignments.assign(ADMIN, "c1", "m3"))

    chat.store.before_next_commit(rival)
    with pytest.raises(Conflict) as lost:
        await chat.assignments.assign(ADMIN, "c1", "m2")

    assert lost.value.error_code == "assignment_changed"
    assert winner["previous_manager_id"] == "m1"
    assert chat.store.log[-2:] == ["written", "stale:channel"]
    assert chat.store.channels["customer-c1"].manager_id == "m3"
    for channel_id in ("customer-c1", "managers-c1"):
        in_chime, in_store = agree(chat, channel_id)
        assert in_chime == in_store, channel_id
    assert chat.store.members("customer-c1") == {"c1", "m3"}
    removed = {args[1] for args in chat.chime.called("remove_member")}
    assert chat.chime.user_arn("m2") in removed  # the compensation ran
    assert {e.data.user_id for e in chat.events("ChannelJoined")} == {"m3"}


async def test_a_conflict_injected_on_the_channel_is_a_conflict() -> None:
    chat = build_chat()
    chat.store.fail_next_commit(stale="channel")
    with pytest.raises(Conflict) as lost:
        await chat.assignments.assign(ADMIN, "c1", "m1")
    assert lost.value.error_code == "assignment_changed"
    assert (chat.store.channels, chat.store.memberships, chat.store.published) == ({}, {}, [])


async def test_a_failed_reassignment_leaves_chime_as_the_store_is() -> None:
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    chat.store.fail_next_commit(error=RuntimeError("DynamoDB is down"))
    with pytest.raises(RuntimeError, match="DynamoDB is down"):
        await chat.assignments.assign(ADMIN, "c1", "m2")
    assert chat.store.members("customer-c1") == {"c1", "m1"}  # nothing was written
    in_chime, in_store = agree(chat, "customer-c1")
    assert in_chime == in_store


async def test_a_lost_race_for_the_first_assignment_leaves_chime_as_the_store_is() -> None:
    chat = build_chat()
    chat.store.before_next_commit(lambda: chat.assignments.assign(ADMIN, "c1", "m2"))
    with pytest.raises(Conflict):
        await chat.assignments.assign(ADMIN, "c1", "m1")
    assert chat.store.channels["customer-c1"].manager_id == "m2"
    for channel_id in ("customer-c1", "managers-c1"):
        in_chime, in_store = agree(chat, channel_id)
        assert in_chime == in_store, channel_id


# --- the channel list ---------------------------------------------------------------------


async def test_a_customer_sees_only_their_own_channel() -> None:
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    await chat.assignments.assign(ADMIN, "c2", "m2")
    listing = await chat.channels.list(customer("c1"), None)
    assert [c["channel_id"] for c in listing["channels"]] == ["customer-c1"]
    assert listing["channels"][0]["is_member"] is True
    assert listing["next_cursor"] is None
    assert (await chat.channels.list(customer("c3"), None))["channels"] == []


async def test_a_manager_sees_every_channel_and_where_they_are_a_member() -> None:
    chat = build_chat(ChatSettings(chat_page_size=3))
    await chat.assignments.assign(ADMIN, "c1", "m1")
    await chat.assignments.assign(ADMIN, "c2", "m2")
    first = await chat.channels.list(manager("m1"), None)
    assert first["next_cursor"] is not None
    second = await chat.channels.list(manager("m1"), first["next_cursor"])
    assert second["next_cursor"] is None
    seen = {c["channel_id"]: c["is_member"] for c in first["channels"] + second["channels"]}
    assert seen == {
        "customer-c1": True,
        "managers-c1": True,
        "customer-c2": False,
        "managers-c2": False,
    }


# --- the ChannelJoined handler ------------------------------------------------------------


def membership_handler(chat: FakeChat):
    (subscription,) = wire(HANDLERS, channels=chat.channels, roles=chat.roles)
    assert subscription.queue == MEMBERSHIP_QUEUE
    return subscription.handlers[ChannelJoined.TYPE]


def a_join(chat: FakeChat, producer: str, channel_id: str = "customer-c1") -> Envelope:
    channel = chat.store.channels.get(channel_id)
    data = ChannelJoined(
        channel_id=channel_id,
        channel_arn=channel.channel_arn if channel else f"arn:missing/{channel_id}",
        user_id="m9",
        reason="mention",
    )
    return Envelope.new(data, producer=producer)


async def test_a_notifier_join_is_recorded_once() -> None:
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    deliver, event = membership_handler(chat), a_join(chat, "notifier")
    chat.store.log.clear()

    await deliver(event)
    await deliver(event)  # redelivered

    assert chat.store.log == ["written", "seen"]
    assert chat.store.memberships["customer-c1", "m9"].reason == "mention"
    assert (MEMBERSHIP_QUEUE, event.event_id) in chat.store.inbox
    assert chat.events("ChannelJoined", user_id="m9") == []  # nothing re-announced


async def test_chats_own_join_is_ignored() -> None:
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    chat.store.log.clear()
    await membership_handler(chat)(a_join(chat, "chat"))
    assert chat.store.log == []
    assert ("customer-c1", "m9") not in chat.store.memberships


async def test_a_join_to_an_unknown_channel_is_rejected() -> None:
    chat = build_chat()
    with pytest.raises(RejectEvent) as rejected:
        await membership_handler(chat)(a_join(chat, "notifier", "customer-nobody"))
    assert rejected.value.reason == "unknown_channel"
    assert (chat.store.log, chat.store.memberships) == ([], {})


# --- the directory (mentions by username) ------------------------------------------------


async def test_a_customer_may_address_managers_and_staff_everyone_by_username() -> None:
    chat = build_chat()
    await chat.people.caller("c1", "customer", "carl")
    await chat.people.caller("c2", "customer", "cora")
    await chat.people.caller("m1", "manager", "mia")
    await chat.people.caller("m2", "manager", "max")
    await chat.people.caller("x", "customer")  # no username: not in the directory

    named = [(p.username, p.role) for p in await chat.people.directory(customer("c1"))]
    assert named == [("carl", "customer"), ("max", "manager"), ("mia", "manager")]
    everyone = {p.username for p in await chat.people.directory(manager("m1"))}
    assert everyone == {"carl", "cora", "max", "mia"}

    await chat.people.caller("m1", "manager", "mia.b")  # a new username is recorded
    assert "mia.b" in {p.username for p in await chat.people.directory(customer("c2"))}
