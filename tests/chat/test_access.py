"""Who may do what (BOLA), and bad input that must leave nothing half-written."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from shared.auth import mint_local_token
from tests.chat.conftest import ChatWorld

pytestmark = pytest.mark.amqp


async def _upload(world: ChatWorld, who: dict[str, str], name: str = "a.txt") -> dict[str, Any]:
    response = await world.http.post(
        "/chat/attachments", files={"file": (name, b"some text", "text/plain")}, headers=who
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def test_customers_and_managers_reach_only_what_they_may(world: ChatWorld) -> None:
    c1, m1, c2, m2 = (world.person(k) for k in ("c", "m", "c", "m"))
    one = await world.assign(c1, m1)
    two = await world.assign(c2, m2)
    c1_chan, c1_mgrs = one["customer_channel"], one["managers_channel"]
    c2_chan, c2_mgrs = two["customer_channel"], two["managers_channel"]
    as_c1, as_c2 = world.token(c1, "customer"), world.token(c2, "customer")
    as_m1 = world.token(m1, "manager")

    attached = await _upload(world, as_c1)
    unattached = await _upload(world, as_c1, "draft.txt")
    posted = await world.http.post(
        f"/chat/channels/{c1_chan['channel_id']}/messages",
        json={"content": "private", "attachment_ids": [attached["attachment_id"]]},
        headers=as_c1,
    )
    assert posted.status_code == 201, posted.text

    # listing: a customer sees only their own customer channel
    assert set(await world.channels(as_c2)) == {c2_chan["channel_id"]}
    assert set(await world.channels(as_c1)) == {c1_chan["channel_id"]}

    # c2 cannot read or post to c1's channels, nor to any managers channel
    for channel_id in (c1_chan["channel_id"], c1_mgrs["channel_id"], c2_mgrs["channel_id"]):
        read = await world.http.get(f"/chat/channels/{channel_id}/messages", headers=as_c2)
        assert read.status_code == 404, read.text
        assert _code(read) == "channel_not_found"
        post = await world.http.post(
            f"/chat/channels/{channel_id}/messages", json={"content": "hi"}, headers=as_c2
        )
        assert post.status_code == 404, post.text
        join = await world.http.post(f"/chat/channels/{channel_id}/join", headers=as_c2)
        assert join.status_code == 403, join.text
    missing = await world.http.get("/chat/channels/customer-nobody/messages", headers=as_c2)
    assert missing.status_code == 404

    # mentions: nobody is mentioned into a channel they may not read
    refused = [
        (as_c2, c2_chan, [c1], "customers_mention_managers_only"),
        (as_c1, c1_chan, [c1], "self_mention"),
        (as_m1, c1_chan, [c2], "cannot_read_channel"),
        (as_m1, c1_mgrs, [c1], "not_a_manager"),
        (as_m1, c1_mgrs, ["nobody-at-all"], "unknown_user"),
    ]
    for who, channel, mentions, reason in refused:
        response = await world.http.post(
            f"/chat/channels/{channel['channel_id']}/messages",
            json={"content": "look", "mentions": mentions},
            headers=who,
        )
        assert response.status_code == 422, response.text
        assert _code(response) == "mention_refused"
        assert response.json()["error"]["details"][0]["reason"] == reason
    allowed = await world.http.post(
        f"/chat/channels/{c1_chan['channel_id']}/messages",
        json={"content": "for you", "mentions": [c1]},
        headers=as_m1,
    )
    assert allowed.status_code == 201, allowed.text

    # attachments: the channel's readers only; an unattached upload is its owner's
    attached_url = f"/chat/attachments/{attached['attachment_id']}"
    unattached_url = f"/chat/attachments/{unattached['attachment_id']}"
    assert (await world.http.get(attached_url, headers=as_c2)).status_code == 404
    assert (await world.http.get(attached_url, headers=as_m1)).status_code == 302
    assert (await world.http.get(unattached_url, headers=as_m1)).status_code == 404
    assert (await world.http.get(unattached_url, headers=as_c1)).status_code == 302
    stolen = await world.http.post(
        f"/chat/channels/{c2_chan['channel_id']}/messages",
        json={"content": "mine now", "attachment_ids": [unattached["attachment_id"]]},
        headers=as_c2,
    )
    assert stolen.status_code == 422
    assert stolen.json()["error"]["details"][0]["reason"] == "unknown_attachment"
    reused = await world.http.post(
        f"/chat/channels/{c1_chan['channel_id']}/messages",
        json={"content": "again", "attachment_ids": [attached["attachment_id"]]},
        headers=as_c1,
    )
    assert reused.status_code == 422
    assert reused.json()["error"]["details"][0]["reason"] == "already_attached"

    # roles: customers do not assign; no role, no chat
    assign = await world.http.put(
        f"/chat/customers/{c2}/manager", json={"manager_id": m1}, headers=as_c1
    )
    assert assign.status_code == 403
    nobody = await world.http.get("/chat/channels", headers=world.token("x-nobody"))
    assert nobody.status_code == 403
    assert _code(nobody) == "no_chat_role"


async def test_missing_expired_and_forged_tokens_are_401(world: ChatWorld) -> None:
    expired = jwt.encode(
        {
            "sub": "c-x",
            "iss": world.settings.auth_local_issuer,
            "client_id": world.settings.auth_local_client_id,
            "token_use": "access",
            "cognito:groups": ["customer"],
            "exp": int(time.time()) - 3600,
            "iat": int(time.time()) - 7200,
        },
        world.settings.auth_local_secret.get_secret_value(),
        algorithm="HS256",
    )
    forged = mint_local_token(
        world.settings.model_copy(
            update={"auth_local_secret": SecretStr("not-the-secret-of-this-deployment-at-all")}
        ),
        "c-x",
    )
    for headers in (
        {},
        {"authorization": f"Bearer {expired}"},
        {"authorization": f"Bearer {forged}"},
    ):
        for method, path in (
            ("GET", "/chat/channels"),
            ("GET", "/chat/channels/customer-x/messages"),
            ("POST", "/chat/channels/customer-x/join"),
            ("POST", "/chat/channels/customer-x/leave"),
            ("GET", "/chat/attachments/abc"),
        ):
            response = await world.http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert "error" in response.json()


async def _objects(world: ChatWorld) -> int:
    listed = await world.s3.list_objects_v2(Bucket=world.settings.chat_attachments_bucket)
    return int(listed.get("KeyCount", 0))


async def test_bad_input_is_refused_and_leaves_nothing_behind(world: ChatWorld) -> None:
    c1, m1 = world.person("c"), world.person("m")
    channel = (await world.assign(c1, m1))["customer_channel"]
    as_c1 = world.token(c1, "customer")
    url = f"/chat/channels/{channel['channel_id']}/messages"
    sends = (await world.calls()).get("SendChannelMessage", 0)
    objects = await _objects(world)
    many = [world.person("m") for _ in range(world.settings.chat_max_mentions + 1)]

    cases: list[tuple[Any, int, str]] = [
        ({"content": ""}, 422, "empty_content"),
        ({"content": "   \n"}, 422, "empty_content"),
        ({"content": "é" * 2049}, 422, "content_too_long"),
        ({"content": "hi", "mentions": many}, 422, "too_many_mentions"),
        ({"content": "hi", "mentions": ["who-is-this"]}, 422, "mention_refused"),
        ({"content": "hi", "attachment_ids": ["no-such-id"]}, 422, "attachment_refused"),
        ({"mentions": []}, 422, "validation_error"),
        ({"content": "hi", "extra": 1}, 422, "validation_error"),
        ({"content": 5}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        response = await world.http.post(url, json=body, headers=as_c1)
        assert response.status_code == status, (body, response.text)
        assert _code(response) == code, body
    broken = await world.http.post(
        url, content=b"{not json", headers={**as_c1, "content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert _code(broken) == "invalid_json"

    uploads: list[tuple[dict[str, Any], int, str]] = [
        (
            {"files": {"file": ("page.html", b"<script>", "text/html")}},
            415,
            "unsupported_content_type",
        ),
        (
            {
                "files": {
                    "file": (
                        "big.txt",
                        b"x" * (world.settings.chat_max_attachment_bytes + 1),
                        "text/plain",
                    )
                }
            },
            413,
            "attachment_too_large",
        ),
        (
            {
                "files": {
                    "file": (
                        "huge.txt",
                        b"x" * (world.settings.chat_max_attachment_bytes + 70_000),
                        "text/plain",
                    )
                }
            },
            413,
            "attachment_too_large",
        ),
        ({"files": {"file": ("empty.txt", b"", "text/plain")}}, 422, "empty_file"),
        ({"files": {"other": ("a.txt", b"x", "text/plain")}}, 422, "file_required"),
        (
            {"content": b"raw bytes", "headers": {"content-type": "application/octet-stream"}},
            415,
            "unsupported_media_type",
        ),
        (
            {"json": {"name": "a.exe", "size": 10, "content_type": "application/x-msdownload"}},
            415,
            "unsupported_content_type",
        ),
        (
            {"json": {"name": "a.png", "size": 10**9, "content_type": "image/png"}},
            413,
            "attachment_too_large",
        ),
        ({"json": {"name": "a.png"}}, 422, "validation_error"),
    ]
    for request, status, code in uploads:
        headers = {**as_c1, **request.pop("headers", {})}
        response = await world.http.post("/chat/attachments", headers=headers, **request)
        assert response.status_code == status, (code, response.text)
        assert _code(response) == code

    # a chunked body (no Content-Length) is cut off at the limit, not spooled whole
    boundary = "belfry-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        'filename="stream.txt"\r\nContent-Type: text/plain\r\n\r\n'
    ).encode()

    async def chunks() -> Any:
        yield head
        for _ in range(40):
            yield b"x" * 8192
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = await world.http.post(
        "/chat/attachments",
        content=chunks(),
        headers={**as_c1, "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413, streamed.text
    assert _code(streamed) == "attachment_too_large"

    assert (await world.calls()).get("SendChannelMessage", 0) == sends
    assert await _objects(world) == objects
    history = await world.http.get(url, headers=as_c1)
    assert history.json()["messages"] == []
    assert world.of("MessagePosted", channel_id=channel["channel_id"]) == []
    assert world.of("UserMentioned", channel_id=channel["channel_id"]) == []
