"""The attachments bucket: server-chosen keys, presigned downloads and uploads."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import ServiceUnavailable
from shared.logging import get_logger

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = get_logger("belfry.chat")

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


def disposition(name: str) -> str:
    """`attachment` so a browser never renders an upload inline (no stored XSS)."""
    ascii_name = _UNSAFE_NAME.sub("_", name)[:150] or "attachment"
    return f'attachment; filename="{ascii_name}"'


@contextlib.asynccontextmanager
async def _s3(operation: str) -> AsyncIterator[None]:
    """S3 failing is a dependency failing: 503 with the JSON error shape."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        log.warning("s3.failed", operation=operation, error=repr(exc)[:300])
        raise ServiceUnavailable(
            "attachment storage is unavailable, try again", code="storage_unavailable"
        ) from exc


class AttachmentBucket:
    """`presigner`: the client whose endpoint the presigned URLs name (a client
    of the public endpoint, `BELFRY_CHAT_S3_PUBLIC_ENDPOINT_URL`); `client` by
    default. A presigned URL is signed for the request it names (SigV4 signs the
    Host header; both SigV2 and SigV4 sign the path, which holds the bucket
    path-style), so it is made with that endpoint rather than rewritten after."""

    def __init__(
        self, client: S3Client, bucket: str, region: str, *, presigner: S3Client | None = None
    ) -> None:
        self._s3 = client
        self._presigner = presigner or client
        self.bucket = bucket
        self._region = region

    async def ensure(self) -> None:
        """Create the bucket if missing. `BucketAlreadyOwnedByYou` is fine;
        `BucketAlreadyExists` means someone else owns the name: fail loudly."""
        try:
            await self._s3.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404:
                raise
        extra: dict[str, Any] = {}
        if self._region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            await self._s3.create_bucket(Bucket=self.bucket, **extra)
            log.info("s3.bucket_created", bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise

    async def put(self, key: str, body: Any, content_type: str, size: int) -> None:
        async with _s3("PutObject"):
            await self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ContentLength=size,
            )

    async def size_of(self, key: str) -> int | None:
        try:
            head = await self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise ServiceUnavailable(
                "attachment storage is unavailable, try again", code="storage_unavailable"
            ) from exc
        return int(head.get("ContentLength", 0))

    async def delete(self, key: str) -> None:
        async with _s3("DeleteObject"):
            await self._s3.delete_object(Bucket=self.bucket, Key=key)

    async def download_url(self, key: str, name: str, content_type: str, seconds: int) -> str:
        async with _s3("PresignGet"):
            url: str = await self._presigner.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": disposition(name),
                    "ResponseContentType": content_type,
                },
                ExpiresIn=seconds,
            )
        return url

    async def upload_form(
        self, key: str, content_type: str, size: int, seconds: int
    ) -> dict[str, Any]:
        """A presigned POST whose policy pins the key, the type and the size:
        prefilled fields alone are not conditions."""
        async with _s3("PresignPost"):
            form: dict[str, Any] = await self._presigner.generate_presigned_post(
                Bucket=self.bucket,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"Content-Type": content_type},
                    ["content-length-range", size, size],
                ],
                ExpiresIn=seconds,
            )
        return form
