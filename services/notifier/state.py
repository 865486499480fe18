"""What the notifier's routes reach through `service_state(request, "notifier")`."""

from __future__ import annotations

from dataclasses import dataclass

from services.notifier.adapters.dynamo import DynamoFeed, DynamoMembers, DynamoMentions
from services.notifier.live import Hub
from services.notifier.settings import NotifierSettings


@dataclass
class Notifier:
    settings: NotifierSettings
    feed: DynamoFeed
    mentions: DynamoMentions
    members: DynamoMembers
    hub: Hub
