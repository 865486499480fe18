"""What the notifier's handlers need from the outside, as Protocols (the
DynamoDB and Chime adapters implement them; unit tests use fakes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from services.notifier.domain import Audience, FeedEntry
from shared.dynamo import TransactItem
from shared.events import Envelope, UserMentioned


class Feed(Protocol):
    async def append(
        self, key: str, entries: Sequence[FeedEntry], notify: set[str] | None = None
    ) -> bool: ...

    async def receipts(self, keys: Sequence[str]) -> dict[str, set[str]]: ...

    def written_here(self, key: str) -> bool: ...


class Members(Protocol):
    async def members(self, channel_id: str) -> set[str]: ...

    async def is_member(self, channel_id: str, user_id: str) -> bool: ...

    async def add(self, channel_id: str, user_id: str, reason: str) -> None: ...

    def join_item(self, channel_id: str, user_id: str, reason: str) -> TransactItem: ...


class Mentions(Protocol):
    def record_item(self, mention: UserMentioned, at: str) -> TransactItem: ...


class Joiner(Protocol):
    async def join(self, channel_arn: str, member_arn: str) -> None: ...


class Claims(Protocol):
    """`shared.inbox.Inbox`: claim/completion/release around a side effect."""

    async def claim(self, consumer: str, event_id: str, lease_seconds: int = 60) -> bool: ...

    def completion(self, consumer: str, event_id: str) -> TransactItem: ...

    async def release(self, consumer: str, event_id: str) -> None: ...


class UnitOfWork(Protocol):
    """`shared.store.Store`: state items + outbox events in one transaction."""

    async def commit(
        self,
        items: Sequence[TransactItem] = (),
        *,
        events: Sequence[Envelope] = (),
        once: tuple[str, str] | None = None,
        token: str | None = None,
    ) -> bool: ...


class Wakeable(Protocol):
    def poke(self, users: Iterable[str]) -> None: ...

    def interested(self, audience: Audience) -> bool: ...
