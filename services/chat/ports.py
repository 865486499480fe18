"""What chat's use cases need from Chime, S3 and its tables (the adapters
implement these; the unit tests use recording fakes)."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, Self

from shared.events import Envelope

from .domain import Attachment, Channel, DirectoryEntry, Message, Person, Role
from .unread import ReadState, Summary


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

    async def update_message(
        self, channel_arn: str, sender_arn: str, message_id: str, content: str, metadata: str
    ) -> None:
        """As the sender; `message_view.MessageRefused` when Chime will not."""
        ...

    async def redact_message(self, channel_arn: str, message_id: str) -> None:
        """As chat's service user; a message Chime no longer has is no error."""
        ...

    async def mark_read(self, channel_arn: str, reader_arn: str) -> None:
        """UpdateChannelReadMarker as the reader (a member of the channel)."""
        ...


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

    def touch_channel(self, message: Message, seq: int) -> None:
        """After `save_message`: number the message `seq`, make it the channel's
        last message and activity, mark it read for its sender and count it as
        a mention for the people it mentions (docs/chat.md, "Unread counts")."""
        ...

    def attach(self, attachment: Attachment, channel_id: str, message_id: str) -> None:
        """Tie an upload to its message, once, and only its owner's."""
        ...

    def edit_message(self, message: Message) -> None:
        """The row's content, mentions and `edited_at`; fails ("message") if it
        is gone or deleted."""
        ...

    def delete_message(self, message: Message) -> None:
        """Mark the row deleted (`deleted_at`, `deleted_by`; content and lists
        removed); fails ("message") if it already is."""
        ...

    def retire_attachment(self, attachment_id: str, message_id: str, at: int) -> None:
        """A deleted message's attachment: unreadable now, queued for the sweep."""
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

    async def message(self, channel_id: str, message_id: str) -> Message | None: ...

    async def refresh_last_message(self, message: Message) -> bool:
        """An edited or deleted message that is its channel's last one: the
        listing's `last_message` shows the new excerpt, or none (`deleted`)."""
        ...

    async def deleted_attachments(self) -> list[Attachment]:
        """Attachments of deleted messages not yet swept (keyed queries)."""
        ...

    async def forget_deleted(self, attachment_id: str) -> bool:
        """Delete such an attachment's row (after its object)."""
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


class ReadStore(Protocol):
    """Channel summaries and read marks (docs/chat.md, "Unread counts")."""

    async def next_seq(self, channel_id: str) -> int:
        """The next number of a message of the channel (atomic)."""
        ...

    async def message_seq(self, channel_id: str, message_id: str) -> int | None:
        """The message's number; None: not a message of this channel."""
        ...

    async def state_and_summary(
        self, user_id: str, channel_id: str
    ) -> tuple[ReadState | None, Summary | None]: ...

    async def save_read(
        self,
        user_id: str,
        channel_id: str,
        state: ReadState,
        read_at: str,
        *,
        expected: ReadState | None,
        event: Envelope,
    ) -> bool:
        """The mark and its event in one transaction, if the row is still
        `expected`; False: it changed meanwhile."""
        ...

    async def activity_page(
        self, cursor: str | None, limit: int
    ) -> tuple[list[Summary], str | None]:
        """Channel summaries (with the channel, when the summary has a copy),
        newest activity first, a page at a time."""
        ...

    async def rows(
        self,
        user_id: str,
        channel_ids: Sequence[str],
        *,
        channels: bool = True,
        summaries: bool = True,
        memberships: bool = True,
    ) -> tuple[dict[str, Channel], dict[str, Summary], dict[str, ReadState], set[str]]:
        """Channels, summaries, the caller's read states of these ids, and the
        ids of those the caller is a member of (one batch)."""
        ...
