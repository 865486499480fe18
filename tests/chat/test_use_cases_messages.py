"""Posting and reading messages over recording fakes (tests/chat/fakes.py): a
message is in Chime exactly when it is in chat's index with its events."""

from __future__ import annotations

import pytest

from shared.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, Unprocessable

from .fakes import ADMIN, FakeChat, build_chat, customer, manager


async def assigned() -> FakeChat:
    """c1 and c2, customers of m1; m2 a manager chat knows."""
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    await chat.assignments.assign(ADMIN, "c2", "m1")
    await chat.people.caller("m2", "manager")
    chat.store.published.clear()
    chat.store.log.clear()
    return chat


def arn_of(chat: FakeChat, channel_id: str) -> str:
    return chat.store.channels[channel_id].channel_arn


async def upload(chat: FakeChat, user_id: str) -> str:
    ref = await chat.attachments.upload(customer(user_id), "a.png", "image/png", 3, b"png")
    return str(ref["attachment_id"])


async def test_a_post_is_in_chime_and_in_the_index_with_its_events() -> None:
    chat = await assigned()
    attachment_id = await upload(chat, "c1")
    view = await chat.messages.post(
        customer("c1"), "customer-c1", "hello @m1", ["m1", "m1"], [attachment_id]
    )

    (sent,) = chat.chime.messages(arn_of(chat, "customer-c1")).values()
    assert (sent.content, sent.sender_arn) == ("hello @m1", chat.chime.user_arn("c1"))
    assert sent.meta["message_id"] == view["message_id"]
    assert sent.meta["mentions"] == ["m1"]
    assert [a["attachment_id"] for a in sent.meta["attachments"]] == [attachment_id]
    stored = chat.store.messages["customer-c1", view["message_id"]]
    assert stored.view() == view
    assert view["chime_message_id"] == sent.message_id
    assert view["mentions"] == ["m1"]
    assert chat.store.uploads[attachment_id].message_id == view["message_id"]
    assert chat.store.uploads[attachment_id].channel_id == "customer-c1"

    assert [e.type for e in chat.store.published] == ["MessagePosted", "UserMentioned"]
    (posted,), (mention,) = chat.events("MessagePosted"), chat.events("UserMentioned")
    assert posted.data.message_id == view["message_id"]
    assert posted.data.channel_kind == "customer"
    assert [a.attachment_id for a in posted.data.attachments] == [attachment_id]
    assert mention.data.mentioned_user_id == "m1"
    assert mention.data.mentioned_user_arn == chat.chime.user_arn("m1")
    assert mention.data.mentioned_by == "c1"
    assert chat.store.log == ["written"]

    history = await chat.messages.history(manager("m2"), "customer-c1", None)
    assert history["messages"] == [view]


async def test_history_is_newest_first_and_pages() -> None:
    chat = await assigned()
    for i in range(3):
        chat.clock.now += 1
        await chat.messages.post(customer("c1"), "customer-c1", f"m{i}", [], [])
    chat.messages.settings = chat.settings.model_copy(update={"chat_page_size": 2})
    first = await chat.messages.history(customer("c1"), "customer-c1", None)
    rest = await chat.messages.history(customer("c1"), "customer-c1", first["next_cursor"])
    assert [m["content"] for m in first["messages"] + rest["messages"]] == ["m2", "m1", "m0"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("caller", "channel_id", "mention", "reason"),
    [
        (manager("m1"), "managers-c1", "c1", "not_a_manager"),
        (customer("c1"), "customer-c1", "c2", "customers_mention_managers_only"),
        (customer("c1"), "customer-c1", "nobody", "unknown_user"),
        (manager("m1"), "customer-c1", "c2", "cannot_read_channel"),
    ],
)
async def test_a_refused_mention_refuses_the_post_before_any_chime_call(
    caller, channel_id, mention, reason
) -> None:
    chat = await assigned()
    calls = len(chat.chime.calls)
    with pytest.raises(Unprocessable) as refused:
        await chat.messages.post(caller, channel_id, "look", [mention], [])
    assert refused.value.error_code == "mention_refused"
    assert refused.value.details == [{"user_id": mention, "reason": reason}]
    assert len(chat.chime.calls) == calls  # not even the mentioned user's AppInstanceUser
    assert (chat.store.messages, chat.store.published, chat.store.log) == ({}, [], [])


async def test_a_post_that_loses_its_attachment_to_a_racing_post_is_withdrawn() -> None:
    chat = await assigned()
    attachment_id = await upload(chat, "c1")
    racing: dict[str, object] = {}

    async def rival() -> None:
        racing.update(
            await chat.messages.post(customer("c1"), "customer-c1", "b", [], [attachment_id])
        )

    chat.store.before_next_commit(rival)
    with pytest.raises(Conflict) as lost:
        await chat.messages.post(customer("c1"), "customer-c1", "a", [], [attachment_id])

    assert lost.value.error_code == "attachment_refused"
    assert chat.store.log == ["written", "stale:attachment"]
    in_chime = chat.chime.messages(arn_of(chat, "customer-c1"))
    assert [m.content for m in in_chime.values()] == ["b"]  # "a" was deleted again
    assert len(chat.chime.called("delete_message")) == 1
    assert [m.content for m in chat.store.messages.values()] == ["b"]
    assert chat.store.uploads[attachment_id].message_id == racing["message_id"]
    assert [e.data.content for e in chat.events("MessagePosted")] == ["b"]


async def test_a_post_whose_commit_fails_is_deleted_from_chime_again() -> None:
    chat = await assigned()
    failure = RuntimeError("DynamoDB is down")
    chat.store.fail_next_commit(error=failure)
    with pytest.raises(RuntimeError) as raised:
        await chat.messages.post(customer("c1"), "customer-c1", "hello", ["m1"], [])
    assert raised.value is failure
    assert chat.chime.messages(arn_of(chat, "customer-c1")) == {}
    (deleted,) = chat.chime.called("delete_message")
    (sent,) = chat.chime.called("send_message")
    assert deleted[0] == sent[0] == arn_of(chat, "customer-c1")
    assert (chat.store.messages, chat.store.published) == ({}, [])


async def test_an_injected_stale_message_row_is_a_conflict_and_withdrawn() -> None:
    chat = await assigned()
    chat.store.fail_next_commit(stale="message")
    with pytest.raises(Conflict):
        await chat.messages.post(customer("c1"), "customer-c1", "hello", [], [])
    assert chat.chime.messages(arn_of(chat, "customer-c1")) == {}
    assert (chat.store.messages, chat.store.published) == ({}, [])


async def test_chime_failing_to_send_leaves_nothing_behind() -> None:
    chat = await assigned()
    chat.chime.fail("send_message")
    with pytest.raises(ServiceUnavailable) as unavailable:
        await chat.messages.post(customer("c1"), "customer-c1", "hello", ["m1"], [])
    assert unavailable.value.error_code == "chime_unavailable"
    assert chat.chime.messages(arn_of(chat, "customer-c1")) == {}
    assert chat.chime.called("delete_message") == []
    assert (chat.store.messages, chat.store.published, chat.store.log) == ({}, [], [])
    # and the next attempt goes through
    await chat.messages.post(customer("c1"), "customer-c1", "hello", ["m1"], [])
    assert len(chat.store.messages) == 1


async def test_a_manager_who_is_not_a_member_is_joined_before_posting() -> None:
    chat = await assigned()
    view = await chat.messages.post(manager("m2"), "customer-c1", "I can help", [], [])

    channel_arn = arn_of(chat, "customer-c1")
    assert chat.chime.user_arn("m2") in chat.chime.members(channel_arn)
    assert chat.store.memberships["customer-c1", "m2"].reason == "manual"
    assert [e.type for e in chat.store.published] == ["ChannelJoined", "MessagePosted"]
    (joined,) = (e.data for e in chat.events("ChannelJoined"))
    assert (joined.user_id, joined.reason, joined.channel_id) == ("m2", "manual", "customer-c1")
    # joined through chat, not through the adapter's repair of a sender who is no member
    (add,) = chat.chime.called("add_member")
    assert add == (channel_arn, chat.chime.user_arn("m2"))
    assert chat.store.messages["customer-c1", view["message_id"]].sender_id == "m2"


async def test_another_customers_channel_does_not_exist_for_a_customer() -> None:
    chat = await assigned()
    calls = len(chat.chime.calls)
    for attempt in (
        chat.messages.post(customer("c2"), "customer-c1", "hi", [], []),
        chat.messages.history(customer("c2"), "customer-c1", None),
        chat.messages.post(customer("c2"), "managers-c2", "hi", [], []),
        chat.messages.post(customer("c2"), "customer-nobody", "hi", [], []),
    ):
        with pytest.raises(NotFound) as hidden:
            await attempt
        assert hidden.value.error_code == "channel_not_found"
    assert len(chat.chime.calls) == calls
    assert chat.store.published == []


async def test_an_admin_reads_but_does_not_post() -> None:
    chat = await assigned()
    assert (await chat.messages.history(ADMIN, "customer-c1", None))["messages"] == []
    with pytest.raises(Forbidden) as refused:
        await chat.messages.post(ADMIN, "customer-c1", "hi", [], [])
    assert refused.value.error_code == "not_a_member"
    assert chat.chime.called("send_message") == []
