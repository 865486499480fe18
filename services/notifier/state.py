"""What the notifier's routes depend on (`provided(Notifier)`)."""

from __future__ import annotations

from dataclasses import dataclass

from .live import Hub
from .ports import FeedReader, MentionInbox, SessionLeases, Typist
from .settings import NotifierSettings


@dataclass(frozen=True)
class Notifier:
    settings: NotifierSettings
    feed: FeedReader
    mentions: MentionInbox
    hub: Hub
    leases: SessionLeases
    typing: Typist | None = None  # None: typing frames are ignored
