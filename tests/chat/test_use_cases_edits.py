"""Editing and deleting messages over recording fakes (tests/chat/fakes.py):
Chime, the index and the events change together; who may do what."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import Conflict, Forbidden, NotFound, Unprocessable

from .fakes import ADMIN, FakeChat, build_chat, customer, manager


async def assigned() -> FakeChat:
    """c1 and c2, customers of m1; m2 a manager chat knows."""
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    await chat.assignments.assign(ADMIN, "c2", "m1")
    await chat.people.caller("m2", "manager")
    return chat


def arn_of(chat: FakeChat, channel_id: str) -> str:
    return chat.store.channels[channel_id].channel_arn


async def posted(chat: FakeChat, text: str = "helo", mentions: list[str] | None = None) -> Any:
    view = await chat.messages.post(customer("c1"), "customer-c1", text, mentions or [], [])
    chat.store.published.clear()
    chat.store.log.clear()
    return view


async def test_an_edit_changes_chime_the_index_and_announces_it() -> None:
    chat = await assigned()
    view = await posted(chat)
    chat.clock.now += 60

    edited = await chat.edits.edit(customer("c1"), "customer-c1", view["message_id"], "hello", [])

    assert edited["content"] == "hello"
    assert edited["edited_at"] is not None
    assert edited["posted_at"] == view["posted_at"]
    (sent,) = chat.chime.messages(arn_of(chat, "customer-c1")).values()
    assert sent.content == "hello"
    assert sent.meta["message_id"] == view["message_id"]
    (_, sender, *_), *_ = chat.chime.called("update_message")
    assert sender == chat.chime.user_arn("c1")
    history = await chat.messages.history(manager("m2"), "customer-c1", None)
    assert history["messages"] == [edited]
    (updated,) = chat.events("MessageUpdated")
    assert (updated.data.content, updated.data.channel_kind) == ("hello", "customer")
    assert [e.type for e in chat.store.published] == ["MessageUpdated"]
    assert chat.store.log == ["written"]


async def test_an_edit_mentions_only_the_people_it_adds() -> None:
    chat = await assigned()
    view = await posted(chat, "hi @m1", ["m1"])

    await chat.edits.edit(customer("c1"), "customer-c1", view["message_id"], "hi", ["m1", "m2"])

    (mention,) = chat.events("UserMentioned")
    assert mention.data.mentioned_user_id == "m2"
    assert mention.data.mentioned_user_arn == chat.chime.user_arn("m2")
    assert chat.chime.user_arn("m2") in chat.chime.users  # ready for the lazy join
    assert chat.events("MessageUpdated")[0].data.mentions == ["m1", "m2"]


async def test_an_edit_refuses_mentions_as_a_post_does() -> None:
    chat = await assigned()
    chat.clock.now += 1
    view = await chat.messages.post(manager("m1"), "managers-c1", "about c1", [], [])
    with pytest.raises(Unprocessable) as refused:
        await chat.edits.edit(manager("m1"), "managers-c1", view["message_id"], "hi", ["c1"])
    assert refused.value.error_code == "mention_refused"
    assert chat.chime.called("update_message") == []


@pytest.mark.parametrize(
    ("content", "code"), [("  ", "empty_content"), ("x" * 4097, "content_too_long")]
)
async def test_an_edit_checks_the_content(content: str, code: str) -> None:
    chat = await assigned()
    view = await posted(chat)
    with pytest.raises(Unprocessable) as refused:
        await chat.edits.edit(customer("c1"), "customer-c1", view["message_id"], content, [])
    assert refused.value.error_code == code


async def test_only_the_sender_edits_within_the_window() -> None:
    chat = await assigned()
    view = await posted(chat)
    message_id = view["message_id"]
    with pytest.raises(Forbidden) as refused:
        await chat.edits.edit(manager("m1"), "customer-c1", message_id, "x", [])
    assert refused.value.error_code == "not_sender"
    with pytest.raises(NotFound) as hidden:  # not their channel: as history
        await chat.edits.edit(customer("c2"), "customer-c1", message_id, "x", [])
    assert hidden.value.error_code == "channel_not_found"
    with pytest.raises(NotFound) as missing:
        await chat.edits.edit(customer("c1"), "customer-c1", "nope", "x", [])
    assert missing.value.error_code == "message_not_found"

    chat.clock.now += chat.settings.chat_edit_window_seconds + 1
    with pytest.raises(Conflict) as late:
        await chat.edits.edit(customer("c1"), "customer-c1", message_id, "x", [])
    assert late.value.error_code == "edit_window_closed"
    assert chat.chime.called("update_message") == []
    assert chat.store.published == []


async def test_a_failed_commit_gives_chime_the_old_text_back() -> None:
    chat = await assigned()
    view = await posted(chat)
    chat.store.fail_next_commit(error=RuntimeError("DynamoDB is down"))
    with pytest.raises(RuntimeError):
        await chat.edits.edit(customer("c1"), "customer-c1", view["message_id"], "hello", [])
    (sent,) = chat.chime.messages(arn_of(chat, "customer-c1")).values()
    assert sent.content == "helo"
    assert chat.store.messages["customer-c1", view["message_id"]].content == "helo"
    assert chat.store.published == []


async def test_a_deletion_redacts_marks_the_row_and_sweeps_the_attachments() -> None:
    chat = await assigned()
    ref = await chat.attachments.upload(customer("c1"), "a.png", "image/png", 3, b"png")
    view = await chat.messages.post(
        customer("c1"), "customer-c1", "see", [], [ref["attachment_id"]]
    )
    chat.store.published.clear()

    assert await chat.edits.delete(customer("c1"), "customer-c1", view["message_id"])

    (sent,) = chat.chime.messages(arn_of(chat, "customer-c1")).values()
    assert sent.redacted
    (shown,) = (await chat.messages.history(manager("m1"), "customer-c1", None))["messages"]
    assert shown["deleted"] is True
    assert (shown["content"], shown["attachments"], shown["deleted_by"]) == (None, [], "c1")
    (deleted,) = chat.events("MessageDeleted")
    assert (deleted.data.message_id, deleted.data.deleted_by) == (view["message_id"], "c1")
    assert ref["key"] not in chat.bucket.objects
    assert ref["attachment_id"] not in chat.store.uploads
    with pytest.raises(NotFound):
        await chat.attachments.download_url(customer("c1"), ref["attachment_id"])

    # idempotent: nothing more happens
    assert not await chat.edits.delete(customer("c1"), "customer-c1", view["message_id"])
    assert len(chat.events("MessageDeleted")) == 1
    with pytest.raises(Conflict) as gone:
        await chat.edits.edit(customer("c1"), "customer-c1", view["message_id"], "x", [])
    assert gone.value.error_code == "message_deleted"


async def test_the_sweep_finishes_what_a_failed_deletion_left() -> None:
    chat = await assigned()
    ref = await chat.attachments.upload(customer("c1"), "a.png", "image/png", 3, b"png")
    view = await chat.messages.post(
        customer("c1"), "customer-c1", "see", [], [ref["attachment_id"]]
    )

    async def down(key: str) -> None:
        raise RuntimeError("S3 is down")

    real, chat.bucket.delete = chat.bucket.delete, down  # type: ignore[method-assign]
    await chat.edits.delete(customer("c1"), "customer-c1", view["message_id"])
    assert ref["key"] in chat.bucket.objects  # left behind, yet unreadable
    with pytest.raises(NotFound):
        await chat.attachments.download_url(customer("c1"), ref["attachment_id"])

    chat.bucket.delete = real  # type: ignore[method-assign]
    assert await chat.attachments.sweep_deleted() == 1
    assert ref["key"] not in chat.bucket.objects
    assert await chat.attachments.sweep_deleted() == 0


async def test_a_manager_moderates_others_may_not() -> None:
    chat = await assigned()
    view = await posted(chat)
    message_id = view["message_id"]
    with pytest.raises(NotFound):
        await chat.edits.delete(customer("c2"), "customer-c1", message_id)
    with pytest.raises(Forbidden) as refused:
        await chat.edits.delete(ADMIN, "customer-c1", message_id)
    assert refused.value.error_code == "not_sender"
    assert chat.chime.called("redact_message") == []

    assert await chat.edits.delete(manager("m2"), "customer-c1", message_id)
    assert chat.events("MessageDeleted")[0].data.deleted_by == "m2"
