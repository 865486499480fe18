"""The events a message causes. `message_fields`: what MessagePosted and
MessageUpdated say of it. `mention_events`: the UserMentioned events, for a post
and for an edit that adds mentions: one per mentioned person, with a mention id
derived from the message and the person (so a redelivered or repeated mention is
one entry)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.events import AttachmentRef, Envelope, UserMentioned

from .domain import Channel, Message, announce, excerpt, request_token
from .ports import ChatChime


def message_fields(channel: Channel, message: Message) -> dict[str, Any]:
    """The fields MessagePosted and MessageUpdated share: the message as posted."""
    return {
        "message_id": message.message_id,
        "channel_id": channel.channel_id,
        "channel_arn": channel.channel_arn,
        "sender_id": message.sender_id,
        "content": message.content,
        "mentions": list(message.mentions),
        "attachments": [AttachmentRef.model_validate(r) for r in message.attachments],
        "posted_at": message.posted_at,
        "channel_kind": channel.kind,
        "customer_id": channel.customer_id,
        "chime_message_id": message.chime_message_id,
    }


def mention_id(message_id: str, user_id: str) -> str:
    return f"{message_id}-{request_token('m', user_id)[2:18]}"


def mention_events(
    chime: ChatChime, channel: Channel, message: Message, user_ids: Iterable[str]
) -> list[Envelope]:
    return [
        announce(
            UserMentioned(
                mention_id=mention_id(message.message_id, user_id),
                message_id=message.message_id,
                channel_id=channel.channel_id,
                channel_arn=channel.channel_arn,
                mentioned_user_id=user_id,
                mentioned_by=message.sender_id,
                excerpt=excerpt(message.content),
                channel_kind=channel.kind,
                customer_id=channel.customer_id,
                mentioned_user_arn=chime.user_arn(user_id),
            )
        )
        for user_id in user_ids
    ]
