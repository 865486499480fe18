"""Editing and deleting messages end to end: chat and the notifier in one app
over real RabbitMQ, moto server and the Chime emulator, clients on real
WebSockets.

c1 (customer of m1) posts with an attachment, edits the text and adds a
mention of m2, a manager not in the channel: history and Chime show the new
text, m1's socket gets `message.updated`, m2 gets an inbox entry and is
joined lazily. c1 deletes the message: the attachment gives 404 and its S3
object is gone, history shows it deleted, `message.deleted` reaches m1's
socket and replays after `?since=`. m1 then deletes (moderates) another of
c1's messages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from services.chat.bootstrap import definition as chat_definition
from services.chat.settings import ChatSettings
from services.notifier.bootstrap import definition as notifier_definition
from services.notifier.settings import NotifierSettings
from shared.auth import mint_local_token
from shared.aws import AwsClients
from shared.bus import instance_id
from shared.service import create_platform_app
from shared.settings import BelfrySettings
from tests.notifier.conftest import ws_client
from tests.support import drop_topology, serving, wait_until

pytestmark = pytest.mark.amqp


@pytest.fixture
async def common(
    make_settings: Callable[..., BelfrySettings], amqp_url: str, moto_url: str, chime_url: str
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(
        amqp_url=amqp_url,
        aws_endpoint_url=moto_url,
        chime_endpoint_url=chime_url,
        retry_delays_seconds=(0.2, 0.5, 1.0, 2.0),
    )
    yield settings.model_dump()
    await drop_topology(settings, f"notifier.fanout.{instance_id(settings)}")


def _find(frames: list[dict[str, Any]], kind: str, message_id: str) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == kind and f["data"]["message_id"] == message_id]


async def test_edit_and_delete_reach_history_chime_s3_and_the_sockets(
    common: dict[str, Any], test_id: str, chime: Any
) -> None:
    bucket = f"{test_id}-att"
    chat_settings = ChatSettings.model_validate(
        {**common, "chat_app_instance_name": test_id, "chat_attachments_bucket": bucket}
    )
    notifier_settings = NotifierSettings.model_validate(common)
    suffix = uuid.uuid4().hex[:6]
    c1, c2, m1, m2 = f"c1-{suffix}", f"c2-{suffix}", f"m1-{suffix}", f"m2-{suffix}"

    def auth(user: str, group: str) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(chat_settings, user, [group])}"}

    app = create_platform_app(
        [chat_definition, notifier_definition],
        settings={"chat": chat_settings, "notifier": notifier_settings},
    )
    async with (
        serving(app) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        AwsClients(chat_settings, services=("s3",)) as aws,
    ):
        for who, group in ((c1, "customer"), (c2, "customer"), (m1, "manager"), (m2, "manager")):
            seen = await http.get("/chat/channels", headers=auth(who, group))
            assert seen.status_code == 200, seen.text
        assigned = await http.put(
            f"/chat/customers/{c1}/manager",
            json={"manager_id": m1},
            headers=auth("admin-1", "admin"),
        )
        assert assigned.status_code == 200, assigned.text
        channel = assigned.json()["customer_channel"]
        messages = f"/chat/channels/{channel['channel_id']}/messages"

        async with ws_client(base, notifier_settings, m1, ["manager"]) as m1_ws:
            upload = await http.post(
                "/chat/attachments",
                files={"file": ("notes.txt", b"hello from c1", "text/plain")},
                headers=auth(c1, "customer"),
            )
            assert upload.status_code == 201, upload.text
            attachment = upload.json()
            posted = await http.post(
                messages,
                json={"content": "helo", "attachment_ids": [attachment["attachment_id"]]},
                headers=auth(c1, "customer"),
            )
            assert posted.status_code == 201, posted.text
            message = posted.json()
            one = f"{messages}/{message['message_id']}"

            await m1_ws.wait_for(lambda f: bool(_find(f, "message.posted", message["message_id"])))
            since = m1_ws.cursor

            # --- the sender edits, adding a mention of m2 (not a member) ---------------
            edited = await http.patch(
                one,
                json={"content": f"hello @{m2}", "mentions": [m2]},
                headers=auth(c1, "customer"),
            )
            assert edited.status_code == 200, edited.text
            assert edited.json()["content"] == f"hello @{m2}"
            assert edited.json()["edited_at"]
            history = (await http.get(messages, headers=auth(c1, "customer"))).json()
            assert history["messages"][0]["content"] == f"hello @{m2}"
            assert history["messages"][0]["edited_at"] == edited.json()["edited_at"]
            in_chime = await aws_message(chat_settings, channel["channel_arn"], message)
            assert in_chime["Content"] == f"hello @{m2}"

            await m1_ws.wait_for(lambda f: bool(_find(f, "message.updated", message["message_id"])))
            (update,) = _find(m1_ws.frames, "message.updated", message["message_id"])
            assert update["data"]["content"] == f"hello @{m2}"
            assert update["data"]["mentions"] == [m2]

            async def m2_inbox() -> list[dict[str, Any]]:
                page = await http.get("/notifications/mentions", headers=auth(m2, "manager"))
                assert page.status_code == 200, page.text
                found: list[dict[str, Any]] = page.json()["mentions"]
                return found

            async def mentioned() -> bool:
                return any(m["message_id"] == message["message_id"] for m in await m2_inbox())

            await wait_until(mentioned, timeout=15, message="m2's inbox entry")
            members = (await chime.channel(channel["channel_arn"]))["members"]
            assert any(arn.endswith(f"/user/{m2}") for arn in members)  # the lazy join

            # --- the sender deletes it ---------------------------------------------------------
            deleted = await http.delete(one, headers=auth(c1, "customer"))
            assert deleted.status_code == 204, deleted.text
            assert (await http.delete(one, headers=auth(c1, "customer"))).status_code == 204
            gone = await http.get(
                f"/chat/attachments/{attachment['attachment_id']}",
                headers=auth(c1, "customer"),
                follow_redirects=False,
            )
            assert gone.status_code == 404, gone.text
            assert gone.json()["error"]["code"] == "attachment_not_found"
            with pytest.raises(ClientError) as missing:
                await aws.s3.head_object(Bucket=bucket, Key=attachment["key"])
            assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")
            shown = (await http.get(messages, headers=auth(m1, "manager"))).json()["messages"][0]
            assert shown["message_id"] == message["message_id"]
            assert (shown["deleted"], shown["content"], shown["attachments"]) == (True, None, [])
            in_chime = await aws_message(chat_settings, channel["channel_arn"], message)
            assert in_chime["Redacted"] is True
            assert "Content" not in in_chime

            await m1_ws.wait_for(lambda f: bool(_find(f, "message.deleted", message["message_id"])))
            (frame,) = _find(m1_ws.frames, "message.deleted", message["message_id"])
            assert frame["data"]["deleted_by"] == c1
            assert frame["data"]["deleted_at"]
            refused = await http.patch(one, json={"content": "x"}, headers=auth(c1, "customer"))
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "message_deleted"

        # resumable: a reconnect after the post replays the edit and the deletion, once each
        async with ws_client(base, notifier_settings, m1, ["manager"], since=since) as again:
            await again.wait_for(lambda f: bool(_find(f, "message.deleted", message["message_id"])))
            replayed = [f["type"] for f in again.frames if f["type"].startswith("message.")]
            assert replayed == ["message.updated", "message.deleted"]

        # --- moderation, and who may not ---------------------------------------------------------
        second = await http.post(messages, json={"content": "oops"}, headers=auth(c1, "customer"))
        assert second.status_code == 201, second.text
        two = f"{messages}/{second.json()['message_id']}"
        for who, group, status, code in (
            (c2, "customer", 404, "channel_not_found"),
            (m1, "manager", 403, "not_sender"),
        ):
            refused = await http.patch(two, json={"content": "x"}, headers=auth(who, group))
            assert refused.status_code == status, refused.text
            assert refused.json()["error"]["code"] == code
        refused = await http.delete(two, headers=auth(c2, "customer"))
        assert refused.status_code == 404, refused.text
        assert (await http.delete(two, headers=auth(m1, "manager"))).status_code == 204
        shown = (await http.get(messages, headers=auth(c1, "customer"))).json()["messages"][0]
        assert (shown["deleted"], shown["deleted_by"]) == (True, m1)


async def aws_message(
    settings: ChatSettings, channel_arn: str, message: dict[str, Any]
) -> dict[str, Any]:
    """The message as Chime has it, read as chat's service user."""
    async with AwsClients(settings, services=("chime-sdk-messaging",)) as aws:
        app_instance = channel_arn.split("/channel/", maxsplit=1)[0]
        found = await aws.chime_messaging.get_channel_message(
            ChannelArn=channel_arn,
            MessageId=message["chime_message_id"],
            ChimeBearer=f"{app_instance}/user/{settings.chat_service_user_id}",
        )
    body: dict[str, Any] = dict(found["ChannelMessage"])
    return body
