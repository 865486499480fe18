"""What the use cases need from Chime and S3 (the adapters implement these)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class ChatChime(Protocol):
    """chat's AppInstance on Chime SDK identity and messaging."""

    app_instance_arn: str
    service_user_arn: str

    def user_arn(self, user_id: str) -> str: ...

    async def ensure_user(self, user_id: str) -> str: ...

    async def create_channel(
        self, channel_id: str, name: str, member_arns: Sequence[str]
    ) -> str: ...

    async def add_member(self, channel_arn: str, member_arn: str) -> None: ...

    async def remove_member(self, channel_arn: str, member_arn: str) -> None: ...

    async def send_message(
        self, channel_arn: str, sender_arn: str, content: str, metadata: str, token: str
    ) -> str: ...

    async def delete_message(self, channel_arn: str, message_id: str) -> None: ...


class AttachmentStore(Protocol):
    """The attachments bucket."""

    bucket: str

    async def put(self, key: str, body: Any, content_type: str, size: int) -> None: ...

    async def size_of(self, key: str) -> int | None: ...

    async def delete(self, key: str) -> None: ...

    async def download_url(self, key: str, name: str, content_type: str, seconds: int) -> str: ...

    async def upload_form(
        self, key: str, content_type: str, size: int, seconds: int
    ) -> dict[str, Any]: ...
