"""Attachments over recording fakes (tests/chat/fakes.py): uploads, who may
download, and the sweep of uploads never attached."""

from __future__ import annotations

import pytest

from shared.errors import NotFound, Unprocessable

from .fakes import ADMIN, NOW, FakeChat, build_chat, customer, manager


async def assigned() -> FakeChat:
    chat = build_chat()
    await chat.assignments.assign(ADMIN, "c1", "m1")
    await chat.assignments.assign(ADMIN, "c2", "m1")
    return chat


async def test_an_upload_stores_the_object_and_the_row() -> None:
    chat = build_chat()
    ref = await chat.attachments.upload(customer("c1"), "../../etc/cat.png", "image/png", 3, b"png")

    attachment_id = ref["attachment_id"]
    assert ref["key"] == f"attachments/{attachment_id}"
    assert ref["name"] == "cat.png"
    assert chat.bucket.objects[ref["key"]].body == b"png"
    assert chat.bucket.objects[ref["key"]].content_type == "image/png"
    row = chat.store.uploads[attachment_id]
    assert (row.owner_id, row.size, row.channel_id, row.uploaded) == ("c1", 3, None, True)
    assert chat.store.created_at[attachment_id] == int(NOW)


async def test_an_upload_whose_row_fails_takes_the_object_back() -> None:
    chat = build_chat()

    async def failing(attachment, created_at) -> None:
        raise RuntimeError("DynamoDB is down")

    chat.store.save_attachment = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await chat.attachments.upload(customer("c1"), "a.png", "image/png", 3, b"png")
    assert chat.bucket.objects == {}
    assert [op for op, _ in chat.bucket.calls] == ["put", "delete"]


async def test_an_unattached_upload_is_only_its_owners() -> None:
    chat = await assigned()
    ref = await chat.attachments.upload(customer("c1"), "a.png", "image/png", 3, b"png")
    url = await chat.attachments.download_url(customer("c1"), ref["attachment_id"])
    assert ref["key"] in url
    for someone_else in (customer("c2"), manager("m1"), ADMIN):
        with pytest.raises(NotFound) as hidden:
            await chat.attachments.download_url(someone_else, ref["attachment_id"])
        assert hidden.value.error_code == "attachment_not_found"
    with pytest.raises(NotFound):
        await chat.attachments.download_url(customer("c1"), "no-such-attachment")


async def test_an_attached_upload_is_for_whoever_reads_the_channel() -> None:
    chat = await assigned()
    ref = await chat.attachments.upload(customer("c1"), "a.png", "image/png", 3, b"png")
    await chat.messages.post(customer("c1"), "customer-c1", "see", [], [ref["attachment_id"]])
    for reader in (customer("c1"), manager("m1"), manager("m7")):
        assert ref["key"] in await chat.attachments.download_url(reader, ref["attachment_id"])
    with pytest.raises(NotFound) as hidden:
        await chat.attachments.download_url(customer("c2"), ref["attachment_id"])
    assert hidden.value.error_code == "attachment_not_found"


async def test_a_presigned_upload_is_usable_once_the_object_arrived() -> None:
    chat = await assigned()
    form = await chat.attachments.upload_form(customer("c1"), "doc.pdf", "application/pdf", 4)
    attachment_id = form["attachment_id"]
    assert form["upload"]["fields"]["key"] == form["key"]
    with pytest.raises(Unprocessable) as refused:
        await chat.messages.post(customer("c1"), "customer-c1", "doc", [], [attachment_id])
    assert refused.value.details == [{"attachment_id": attachment_id, "reason": "not_uploaded"}]
    assert chat.chime.called("send_message") == []

    chat.bucket.complete_upload(form["key"], b"%PDF", "application/pdf")
    await chat.messages.post(customer("c1"), "customer-c1", "doc", [], [attachment_id])
    row = chat.store.uploads[attachment_id]
    assert (row.channel_id, row.uploaded) == ("customer-c1", True)


async def test_someone_elses_or_a_used_upload_is_refused() -> None:
    chat = await assigned()
    ref = await chat.attachments.upload(customer("c1"), "a.png", "image/png", 3, b"png")
    attachment_id = ref["attachment_id"]
    with pytest.raises(Unprocessable) as refused:
        await chat.messages.post(customer("c2"), "customer-c2", "mine", [], [attachment_id])
    assert refused.value.details[0]["reason"] == "unknown_attachment"
    await chat.messages.post(customer("c1"), "customer-c1", "one", [], [attachment_id])
    with pytest.raises(Unprocessable) as refused:
        await chat.messages.post(customer("c1"), "customer-c1", "two", [], [attachment_id])
    assert refused.value.details[0]["reason"] == "already_attached"
    assert [m.content for m in chat.store.messages.values()] == ["one"]


async def test_the_sweep_deletes_old_unattached_uploads_only() -> None:
    chat = await assigned()
    old = await chat.attachments.upload(customer("c1"), "old.png", "image/png", 3, b"old")
    kept = await chat.attachments.upload(customer("c1"), "used.png", "image/png", 3, b"use")
    await chat.messages.post(customer("c1"), "customer-c1", "x", [], [kept["attachment_id"]])
    chat.clock.now += 1000
    new = await chat.attachments.upload(customer("c1"), "new.png", "image/png", 3, b"new")

    assert await chat.attachments.sweep_unattached(before=int(NOW) + 500) == 1

    assert set(chat.store.uploads) == {kept["attachment_id"], new["attachment_id"]}
    assert set(chat.bucket.objects) == {kept["key"], new["key"]}
    assert ("delete", old["key"]) in chat.bucket.calls
    assert await chat.attachments.sweep_unattached(before=int(NOW) + 500) == 0


async def test_the_sweep_by_default_keeps_uploads_within_the_retention() -> None:
    chat = build_chat()
    ref = await chat.attachments.upload(customer("c1"), "a.png", "image/png", 3, b"png")
    chat.clock.now += chat.settings.chat_unattached_retention_seconds
    assert await chat.attachments.sweep_unattached() == 0
    chat.clock.now += 1
    assert await chat.attachments.sweep_unattached() == 1
    assert (chat.store.uploads, chat.bucket.objects) == ({}, {})
    assert ref["attachment_id"] not in chat.store.created_at
