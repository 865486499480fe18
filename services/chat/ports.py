"""What chat's use cases need from Chime, S3 and its tables (the adapters
implement these; the unit tests use recording fakes)."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, Self

from shared.events import Envelope

from .domain import Attachment, Channel, DirectoryEntry, Message, Person, Role


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


class Directory(Protocol):
    """The identity provider's word on a person's groups (docs/chat.md, "Roles"):
    the Cognito user pool, or, with none configured, chat's record of the role
    it last saw in that person's own token."""

    authoritative: bool  # False: only chat's own record; a token's role is trusted

    async def find(self, user_id: str, *, fresh: bool = False) -> DirectoryEntry | None:
        """The user whose token `sub` is `user_id`: their username and groups;
        None: no such user. `fresh` skips the cache (the sweep)."""
        ...

    def forget(self, user_id: str) -> None:
        """Drop what is cached of this user (chat saw their role change)."""
        ...


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


class ChatWork(Protocol):
    """One unit of work (`shared.store.UnitOfWork` underneath): state, events and
    compensations, committed in one transaction. `commit` raises
    `shared.store.Stale` (with the roles below that failed: "channel",
    "membership", "message", "attachment") after the compensations ran."""

    def save_channel(self, channel: Channel, *, expected_manager: str | None) -> None:
        """Create the channel row (`expected_manager` None), or move its manager
        from `expected_manager` (`domain.UNASSIGNED`: from none), only if nobody
        moved it since we read."""
        ...

    def add_member(self, channel_id: str, user_id: str, reason: str, at: int) -> None: ...

    def remove_member(self, channel_id: str, user_id: str) -> None: ...

    def save_message(self, message: Message) -> None:
        """The message's index row (fails if the message id exists)."""
        ...

    def attach(self, attachment: Attachment, channel_id: str, message_id: str) -> None:
        """Tie an upload to its message, once, and only its owner's."""
        ...

    def emit(self, *events: Envelope) -> None: ...

    def once(self, consumer: str, event_id: str) -> None: ...

    def compensate(self, undo: Callable[[], Awaitable[object]]) -> None: ...

    @property
    def empty(self) -> bool: ...

    async def commit(self, *, token: str | None = None) -> bool: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None: ...


class ChatStore(Protocol):
    """chat's tables, as the use cases see them."""

    def work(self) -> ChatWork: ...

    # people
    async def people(self, user_ids: Sequence[str]) -> dict[str, Person]: ...

    async def person(self, user_id: str) -> Person | None: ...

    async def save_person(self, person: Person) -> None:
        """Record the role and the username (and the ARN once known); a known ARN
        or username is never forgotten."""
        ...

    async def people_with_role(self, role: Role, limit: int) -> list[Person]:
        """People chat knows with this role and a username, by username."""
        ...

    async def people_page(
        self, role: Role, cursor: str | None, limit: int
    ) -> tuple[list[Person], str | None]:
        """Every person recorded with this role and a username, a page at a time
        (a keyed Query on the `by_role` index)."""
        ...

    # channels and memberships
    async def channel(self, channel_id: str) -> Channel | None: ...

    async def channel_page(
        self, cursor: str | None, limit: int
    ) -> tuple[list[Channel], str | None]:
        """Every channel, a page at a time (a keyed Query, never a Scan)."""
        ...

    async def is_member(self, channel_id: str, user_id: str) -> bool: ...

    async def channels_of(self, user_id: str) -> set[str]: ...

    # messages
    async def message_page(
        self, channel_id: str, cursor: str | None, limit: int
    ) -> tuple[list[Message], str | None]:
        """A channel's messages, newest first."""
        ...

    # attachments
    async def attachments(self, attachment_ids: Sequence[str]) -> dict[str, Attachment]: ...

    async def save_attachment(self, attachment: Attachment, created_at: int) -> None: ...

    async def unattached_before(self, before: int) -> list[Attachment]:
        """Uploads created before `before` and never attached (keyed queries)."""
        ...

    async def forget_unattached(self, attachment_id: str) -> bool:
        """Delete the upload's row unless a message took it meanwhile."""
        ...
