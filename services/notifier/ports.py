"""What the notifier's handlers need from the outside, as Protocols (the
DynamoDB and Chime adapters implement them; unit tests use fakes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Protocol

from services.notifier.domain import FeedEntry
from shared.dynamo import TransactItem
from shared.events import Envelope, UserMentioned


class Feed(Protocol):
    async def append(
        self, key: str, entries: Sequence[FeedEntry], notify: set[str] | None = None
    ) -> bool: ...

    async def receipt(self, key: str) -> set[str] | None: ...

    def written_here(self, key: str) -> asyncio.Event: ...

    def forget(self, key: str) -> None: ...


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

    def connected(self, users: Iterable[str]) -> list[str]: ...

    def __len__(self) -> int: ...
