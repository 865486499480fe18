"""Editing and deleting over chat's HTTP API (RabbitMQ, moto server, the Chime
emulator): the events on the bus, the JSON errors of bad input, who may do what."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chat.conftest import ChatWorld

pytestmark = pytest.mark.amqp


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def _post(world: ChatWorld, channel_id: str, who: dict[str, str], text: str) -> str:
    response = await world.http.post(
        f"/chat/channels/{channel_id}/messages", json={"content": text}, headers=who
    )
    assert response.status_code == 201, response.text
    message_id: str = response.json()["message_id"]
    return message_id


async def test_an_edit_and_a_deletion_are_announced_on_the_bus(world: ChatWorld) -> None:
    c1, m1, m2 = world.person("c"), world.person("m"), world.person("m")
    await world.seen(m2, "manager")
    channel = (await world.assign(c1, m1))["customer_channel"]["channel_id"]
    as_c1 = world.token(c1, "customer")
    message_id = await _post(world, channel, as_c1, "first")
    url = f"/chat/channels/{channel}/messages/{message_id}"

    edited = await world.http.patch(
        url, json={"content": f"first, @{m2}", "mentions": [m2]}, headers=as_c1
    )
    assert edited.status_code == 200, edited.text
    (updated,) = await world.wait_for("MessageUpdated", message_id=message_id)
    assert updated.data.content == f"first, @{m2}"
    assert updated.data.channel_kind == "customer"
    (mention,) = await world.wait_for("UserMentioned", message_id=message_id)
    assert mention.data.mentioned_user_id == m2
    # the same mentions again: no second UserMentioned
    again = await world.http.patch(url, json={"content": "first!", "mentions": [m2]}, headers=as_c1)
    assert again.status_code == 200, again.text
    await world.wait_for("MessageUpdated", 2, message_id=message_id)
    assert len(world.of("UserMentioned", message_id=message_id)) == 1
    as_m1 = world.token(m1, "manager")
    listed = (await world.channels(as_m1))[channel]["last_message"]
    assert (listed["message_id"], listed["excerpt"]) == (message_id, "first!")

    assert (await world.http.delete(url, headers=as_m1)).status_code == 204
    (deleted,) = await world.wait_for("MessageDeleted", message_id=message_id)
    assert deleted.data.deleted_by == m1
    listed = (await world.channels(as_m1))[channel]["last_message"]
    assert (listed["message_id"], listed["excerpt"], listed["deleted"]) == (message_id, None, True)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"content": "  "}, 422, "empty_content"),
        ({"content": "x" * 4097}, 422, "content_too_long"),
        ({"mentions": []}, 422, "validation_error"),
        ({"content": "hi", "attachment_ids": []}, 422, "validation_error"),
        ({"content": 5}, 422, "validation_error"),
        ({"content": "hi", "mentions": ["nobody-known"]}, 422, "mention_refused"),
    ],
)
async def test_bad_edits_are_json_errors(
    world: ChatWorld, body: dict[str, Any], status: int, code: str
) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]["channel_id"]
    as_c1 = world.token(c1, "customer")
    message_id = await _post(world, channel, as_c1, "original")
    url = f"/chat/channels/{channel}/messages/{message_id}"

    refused = await world.http.patch(url, json=body, headers=as_c1)
    assert (refused.status_code, _code(refused)) == (status, code), refused.text
    broken = await world.http.patch(
        url, content=b"{not json", headers={**as_c1, "content-type": "application/json"}
    )
    assert (broken.status_code, _code(broken)) == (400, "invalid_json")
    history = await world.http.get(f"/chat/channels/{channel}/messages", headers=as_c1)
    assert history.json()["messages"][0]["content"] == "original"
    assert history.json()["messages"][0]["edited_at"] is None


async def test_who_may_edit_and_delete(world: ChatWorld) -> None:
    c1, m1, c2 = world.person("c"), world.person("m"), world.person("c")
    one = await world.assign(c1, m1)
    await world.assign(c2, m1)
    channel = one["customer_channel"]["channel_id"]
    managers = one["managers_channel"]["channel_id"]
    as_c1, as_c2 = world.token(c1, "customer"), world.token(c2, "customer")
    as_m1, as_admin = world.token(m1, "manager"), world.token("admin-1", "admin")
    message_id = await _post(world, channel, as_c1, "mine")
    url = f"/chat/channels/{channel}/messages/{message_id}"
    managers_note = await _post(world, managers, as_m1, "about c1")
    note_url = f"/chat/channels/{managers}/messages/{managers_note}"

    cases = [
        (world.http.patch(url, json={"content": "x"}, headers=as_c2), 404, "channel_not_found"),
        (world.http.delete(url, headers=as_c2), 404, "channel_not_found"),
        (world.http.patch(url, json={"content": "x"}, headers=as_m1), 403, "not_sender"),
        (world.http.patch(url, json={"content": "x"}, headers=as_admin), 403, "not_sender"),
        (world.http.delete(url, headers=as_admin), 403, "not_sender"),
        (world.http.delete(note_url, headers=as_c1), 404, "channel_not_found"),
        (
            world.http.patch(note_url, json={"content": "x"}, headers=as_c1),
            404,
            "channel_not_found",
        ),
        (
            world.http.patch(f"{url}x", json={"content": "x"}, headers=as_c1),
            404,
            "message_not_found",
        ),
        (world.http.delete(f"{url}x", headers=as_c1), 404, "message_not_found"),
        (
            world.http.delete(f"/chat/channels/nope/messages/{message_id}", headers=as_m1),
            404,
            "channel_not_found",
        ),
    ]
    for call, status, code in cases:
        response = await call
        assert (response.status_code, _code(response)) == (status, code), response.text
    assert world.of("MessageUpdated", message_id=message_id) == []
    assert world.of("MessageDeleted", message_id=message_id) == []

    history = await world.http.get(f"/chat/channels/{channel}/messages", headers=as_c1)
    assert history.json()["messages"][0]["content"] == "mine"
    assert (await world.http.delete(url, headers=as_c1)).status_code == 204
    assert (await world.http.delete(url, headers=as_m1)).status_code == 204  # already deleted
    late = await world.http.patch(url, json={"content": "x"}, headers=as_c1)
    assert (late.status_code, _code(late)) == (409, "message_deleted")


async def test_the_sweep_deletes_what_a_deletion_could_not(
    world: ChatWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 fails right after the deletion's commit: the attachment is unreadable
    at once, and the sweeper's keyed query (moto's index) finds and deletes it."""
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]["channel_id"]
    as_c1 = world.token(c1, "customer")
    upload = await world.http.post(
        "/chat/attachments", files={"file": ("a.txt", b"some text", "text/plain")}, headers=as_c1
    )
    assert upload.status_code == 201, upload.text
    attachment = upload.json()
    posted = await world.http.post(
        f"/chat/channels/{channel}/messages",
        json={"content": "see", "attachment_ids": [attachment["attachment_id"]]},
        headers=as_c1,
    )
    assert posted.status_code == 201, posted.text
    attachments = world.chat.use_cases.attachments
    bucket = world.settings.chat_attachments_bucket

    async def s3_down(key: str) -> None:
        raise RuntimeError("S3 is down")

    monkeypatch.setattr(attachments.bucket, "delete", s3_down)
    url = f"/chat/channels/{channel}/messages/{posted.json()['message_id']}"
    assert (await world.http.delete(url, headers=as_c1)).status_code == 204
    gone = await world.http.get(f"/chat/attachments/{attachment['attachment_id']}", headers=as_c1)
    assert (gone.status_code, _code(gone)) == (404, "attachment_not_found")
    await world.s3.head_object(Bucket=bucket, Key=attachment["key"])  # still there

    monkeypatch.undo()
    assert await attachments.sweep_deleted() >= 1
    listed = await world.s3.list_objects_v2(Bucket=bucket, Prefix=attachment["key"])
    assert listed.get("KeyCount", 0) == 0
    left = await world.chat.use_cases.attachments.store.deleted_attachments()
    assert attachment["attachment_id"] not in {a.attachment_id for a in left}
