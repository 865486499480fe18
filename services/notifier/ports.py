"""What the notifier's handlers and routes need from the outside, as Protocols
(the DynamoDB and Chime adapters implement them; unit tests use fakes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.auth import Principal
from shared.events import Envelope, RoomUpdated, UserMentioned

from .domain import Audience, FeedEntry, FeedRow

EventKey = tuple[str, str]  # (consumer, event_id): what the inbox records


class ChimeUnavailable(Exception):
    """Chime failed (throttling or 5xx outlived the client's retries, or a network
    error): the handler fails and the bus retries it later."""


class ChimeRejected(Exception):
    """Chime refused the call for good (unknown channel, forbidden, bad input)."""


class Feed(Protocol):
    async def append(
        self, key: str, entries: Sequence[FeedEntry], notify: set[str] | None = None
    ) -> bool:
        """Append `entries` once per `key` (False: appended before); the receipt
        names `notify` (default: the entries' users)."""
        ...

    async def receipts(self, keys: Sequence[str]) -> dict[str, set[str]]:
        """The users each done append touched (keys not appended yet are absent)."""
        ...

    def written_here(self, key: str) -> bool: ...

    def in_flight(self, key: str) -> bool:
        """This process is appending `key` right now (queued or committing)."""
        ...


class FeedReader(Protocol):
    async def head(self, user_id: str) -> int: ...

    async def read(
        self, user_id: str, after: int, limit: int = 100
    ) -> tuple[list[FeedRow], bool]: ...


class Members(Protocol):
    """The notifier's view of channel membership (from ChannelJoined and ChannelLeft)."""

    async def members(self, channel_id: str) -> set[str]: ...

    async def is_member(self, channel_id: str, user_id: str) -> bool: ...

    async def add(self, channel_id: str, user_id: str, reason: str) -> None: ...

    async def remove(self, channel_id: str, user_id: str) -> None:
        """Forget a membership announced ended by a ChannelLeft (idempotent)."""
        ...

    def forget(self, channel_id: str, user_id: str) -> None:
        """Drop it from this replica's memory only (a ChannelLeft on the fan-out)."""
        ...

    def learned(self, channel_id: str, user_id: str) -> None:
        """A join on the fan-out (whichever replica records it): into this
        replica's cached list at once, so the cache can live long."""
        ...


@dataclass(frozen=True)
class Recorded:
    mention: bool  # the inbox entry was written here (not by a peer first)
    joined: bool  # the membership was written (and announced) here


class MentionInbox(Protocol):
    async def record(
        self, mention: UserMentioned, at: str, *, joined: Envelope | None, claim: EventKey
    ) -> Recorded:
        """The mention in the person's inbox and, with `joined` (the ChannelJoined
        of a lazy join), the membership and its event, completing `claim`: one
        transaction."""
        ...

    async def page(
        self, user_id: str, *, unread_only: bool, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    async def unread_count(self, user_id: str) -> int: ...

    async def mark_read(self, user_id: str, mention_id: str, at: str) -> bool: ...


class Joiner(Protocol):
    async def join(self, channel_arn: str, member_arn: str) -> None:
        """The AppInstanceUser is a member of the channel once this returns."""
        ...


class Claims(Protocol):
    """`shared.inbox.Inbox`: a claim around a side effect outside DynamoDB."""

    async def claim(self, consumer: str, event_id: str, lease_seconds: int = 60) -> bool: ...

    async def release(self, consumer: str, event_id: str) -> None: ...


class Wakeable(Protocol):
    def poke(self, users: Iterable[str]) -> None: ...

    def interested(self, audience: Audience) -> bool: ...


class Broadcast(Protocol):
    def broadcast(self, key: str, frame_type: str, text: str) -> None:
        """An ephemeral frame (no cursor, not in any feed) to every session here;
        one still waiting to be sent is replaced by the next of its `key`."""
        ...


class Recipients(Protocol):
    def push_to(
        self,
        users: Iterable[str],
        key: str,
        frame_type: str,
        text: str,
        visible: Callable[[Principal], bool],
    ) -> int:
        """An ephemeral frame to this replica's sessions of `users` whose token
        `visible` admits (as `Broadcast.broadcast`, per `key`); how many."""
        ...


class MemberLists(Protocol):
    async def members(self, channel_id: str) -> set[str]:
        """The channel's members as this replica's view has them (`Members`)."""
        ...


class Typist(Protocol):
    def typed(self, principal: Principal, channel_id: str) -> bool:
        """A client's typing frame (never blocks the socket): True if relayed."""
        ...


class RoomUpdates(Protocol):
    def update(self, event: RoomUpdated) -> None:
        """What the landing page shows of a room changed (this replica's board)."""
        ...


class SessionLeases(Protocol):
    """Open WebSockets per user, shared by every replica: a lease per session that
    its replica renews while it is open, so a crashed replica's sessions expire."""

    async def acquire(
        self, user_id: str, session_id: str, limit: int, lease_seconds: float
    ) -> bool:
        """A lease for the session unless the user holds `limit` live ones (False)."""
        ...

    async def renew(self, user_id: str, session_id: str, lease_seconds: float) -> bool:
        """Extend it; False if it expired or is gone (then `acquire` again)."""
        ...

    async def release(self, user_id: str, session_id: str) -> None: ...
