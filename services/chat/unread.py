"""Read state as chat decides it (docs/chat.md, "Unread counts"): messages of a
channel are numbered (`seq`) as they are posted; a person's read mark is the
number of the message they read up to; unread = the channel's number - the
mark; unread mentions = the mentions numbered after the mark. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .domain import Channel, excerpt
from .message_view import Message

NEVER = 0  # the mark of someone who read nothing (and the number of unnumbered messages)


@dataclass(frozen=True)
class ReadState:
    """One person's row for one channel."""

    read_seq: int | None = None  # None: never marked (and never posted)
    up_to: str | None = None
    mentions: tuple[int, ...] = ()  # numbers of the messages that mentioned them


@dataclass(frozen=True)
class Summary:
    """A channel's row: how many messages, the last one, when."""

    channel_id: str
    seq: int = 0
    activity: str = ""
    last_message: Mapping[str, Any] | None = None
    channel: Channel | None = None  # the channel's fields, copied by every channel write


def seed_activity(channel_id: str, created_at: float) -> str:
    """The activity of a channel without messages: its creation, sorted as a
    message id of that millisecond would be (and before it)."""
    return f"{int(created_at * 1000):013d}-{'0' * 16}#{channel_id}"


def last_message_of(message: Message) -> dict[str, Any]:
    """What the listing shows of a channel's newest message."""
    return {
        "message_id": message.message_id,
        "excerpt": excerpt(message.content),
        "sender_id": message.sender_id,
        "posted_at": message.posted_at,
        "deleted": False,
    }


def unread_count(summary: Summary | None, state: ReadState | None) -> int:
    seq = summary.seq if summary else 0
    mark = state.read_seq if state and state.read_seq is not None else NEVER
    return max(0, seq - mark)


def unread_mentions(state: ReadState | None) -> int:
    if state is None:
        return 0
    mark = state.read_seq if state.read_seq is not None else NEVER
    return sum(1 for seq in state.mentions if seq > mark)


def advanced(state: ReadState | None, seq: int, up_to: str) -> ReadState | None:
    """The row after a mark at `seq`; None if the mark is not newer (ignored).
    Mentions the mark covers are dropped, so that the row stays small."""
    current = state.read_seq if state and state.read_seq is not None else None
    if current is not None and seq <= current:
        return None
    kept = tuple(m for m in (state.mentions if state else ()) if m > seq)
    return ReadState(read_seq=seq, up_to=up_to, mentions=kept)


def listing_fields(summary: Summary | None, state: ReadState | None) -> dict[str, Any]:
    """The listing's read-state fields of one channel."""
    last = dict(summary.last_message) if summary and summary.last_message else None
    return {
        "unread_count": unread_count(summary, state),
        "unread_mentions": unread_mentions(state),
        "last_message": last,
    }
