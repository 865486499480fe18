"""A message as chat indexes it, and how history and the API show it: in
place, also once edited (`edited_at`) or deleted (`deleted`, no content, no
mentions, no attachments). No I/O here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """A message as chat indexes it (the content and metadata also went to Chime)."""

    message_id: str
    channel_id: str
    sender_id: str
    content: str
    posted_at: str  # ISO-8601 UTC
    chime_message_id: str | None = None
    mentions: tuple[str, ...] = ()
    attachments: tuple[dict[str, object], ...] = ()
    metadata_compact: bool = False  # Chime's Metadata holds a reference, not the lists
    edited_at: str | None = None  # ISO-8601 UTC of the last edit
    deleted_at: str | None = None  # ISO-8601 UTC; the content is gone from the index
    deleted_by: str | None = None  # the sender, or the manager who moderated it

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def view(self) -> dict[str, object]:
        gone = self.deleted
        return {
            "message_id": self.message_id,
            "channel_id": self.channel_id,
            "chime_message_id": self.chime_message_id,
            "sender_id": self.sender_id,
            "content": None if gone else self.content,
            "mentions": [] if gone else list(self.mentions),
            "attachments": [] if gone else list(self.attachments),
            "posted_at": self.posted_at,
            "edited_at": self.edited_at,
            "deleted": gone,
            "deleted_at": self.deleted_at,
            "deleted_by": self.deleted_by,
        }


class MessageRefused(Exception):
    """Chime refused to change a message (`code`: its error code)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
