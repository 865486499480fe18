"""`BELFRY_CHAT_S3_PUBLIC_ENDPOINT_URL`: presigned attachment URLs name the public
endpoint (what a browser on the host can reach, e.g. compose's published moto port),
are signed for it, and work from there; chat itself keeps talking to
`BELFRY_AWS_ENDPOINT_URL`.

Here the two endpoints are two names of one moto server: chat talks to
http://127.0.0.1:<port>, the URLs it hands out say http://localhost:<port>."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiobotocore.session import get_session

from services.chat.adapters.s3 import AttachmentBucket
from services.chat.bootstrap import definition
from services.chat.settings import ChatSettings
from shared.auth import mint_local_token
from shared.aws import AwsClients
from shared.service import create_platform_app
from tests.chat.conftest import chat_settings
from tests.support import serving


@dataclass
class PublicWorld:
    settings: ChatSettings
    http: httpx.AsyncClient
    public: str  # scheme://host:port of the public endpoint

    def token(self, sub: str) -> dict[str, str]:
        return {"authorization": f"Bearer {mint_local_token(self.settings, sub, ['customer'])}"}


def public_alias(moto_url: str) -> str:
    internal = urlsplit(moto_url)
    assert internal.hostname == "127.0.0.1", moto_url
    return f"http://localhost:{internal.port}"


@pytest.fixture(scope="module")
async def public_world(moto_url: str, chime_url: str) -> AsyncIterator[PublicWorld]:
    test_id = f"pub{uuid.uuid4().hex[:8]}"
    public = public_alias(moto_url)
    settings = chat_settings(
        "memory://", moto_url, chime_url, test_id, chat_s3_public_endpoint_url=public
    )
    app = create_platform_app([definition], settings={"chat": settings})
    async with (
        serving(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        yield PublicWorld(settings, http, public)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def test_a_download_url_names_the_public_endpoint_and_serves_the_bytes(
    public_world: PublicWorld,
) -> None:
    customer = public_world.token(f"c-{uuid.uuid4().hex[:8]}")
    upload = await public_world.http.post(
        "/chat/attachments",
        files={"file": ("report.pdf", b"%PDF-1.4 public", "application/pdf")},
        headers=customer,
    )
    assert upload.status_code == 201, upload.text
    attachment = upload.json()

    download = await public_world.http.get(
        f"/chat/attachments/{attachment['attachment_id']}", headers=customer
    )
    assert download.status_code == 302, download.text
    location = download.headers["location"]
    assert origin(location) == public_world.public
    query = parse_qs(urlsplit(location).query)
    assert {"Signature", "X-Amz-Signature"} & set(query), location  # presigned (SigV2 or 4)
    async with httpx.AsyncClient() as plain:
        # as the console's fetch() asks for it, from the origin of the page (the proxy)
        fetched = await plain.get(location, headers={"origin": "http://127.0.0.1:8080"})
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["access-control-allow-origin"] in ("*", "http://127.0.0.1:8080")
    assert fetched.content == b"%PDF-1.4 public"
    assert "attachment" in fetched.headers["content-disposition"]


async def test_an_upload_form_posts_to_the_public_endpoint(
    public_world: PublicWorld, aws: AwsClients
) -> None:
    customer = public_world.token(f"c-{uuid.uuid4().hex[:8]}")
    body = b"\x89PNG public"
    asked = await public_world.http.post(
        "/chat/attachments",
        json={"name": "photo.png", "size": len(body), "content_type": "image/png"},
        headers=customer,
    )
    assert asked.status_code == 201, asked.text
    form = asked.json()
    assert origin(form["upload"]["url"]) == public_world.public
    async with httpx.AsyncClient() as plain:
        uploaded = await plain.post(
            form["upload"]["url"],
            data=form["upload"]["fields"],
            files={"file": ("photo.png", body, "image/png")},
        )
    assert uploaded.status_code in (200, 204), uploaded.text
    # it arrived in the bucket chat talks to (the internal endpoint)
    stored = await aws.s3.get_object(
        Bucket=public_world.settings.chat_attachments_bucket, Key=form["key"]
    )
    assert await stored["Body"].read() == body


async def test_unset_means_the_endpoint_chat_talks_to() -> None:
    """The adapter alone (presigning sends nothing): its own client's endpoint by
    default, the presigner's when it has one."""
    assert ChatSettings(aws_endpoint_url="http://moto:5000").chat_s3_public_endpoint_url is None
    session = get_session()
    async with (
        session.create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url="http://moto:5000",
            aws_access_key_id="k",
            aws_secret_access_key="s",
        ) as internal,
        session.create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:5000",
            aws_access_key_id="k",
            aws_secret_access_key="s",
        ) as public,
    ):
        plain = AttachmentBucket(internal, "bucket", "us-east-1")
        signed = AttachmentBucket(internal, "bucket", "us-east-1", presigner=public)
        for bucket, expected in ((plain, "http://moto:5000"), (signed, "http://127.0.0.1:5000")):
            url = await bucket.download_url("attachments/a1", "a.pdf", "application/pdf", 60)
            assert origin(url) == expected
            assert urlsplit(url).path == "/bucket/attachments/a1"
            form = await bucket.upload_form("attachments/a1", "application/pdf", 4, 60)
            assert origin(form["url"]) == expected
