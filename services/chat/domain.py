"""chat's rules: ids, who may read, post to and be mentioned in which channel,
and what a message carries in Chime's `Metadata`. No I/O here."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Literal

from shared.errors import BelfryError, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from shared.events import Producer

from .message_view import Message as Message  # noqa: PLC0414 (re-exported for the use cases)

Role = Literal["customer", "manager", "admin"]
ChannelKind = Literal["customer", "managers"]
CUSTOMER: Role = "customer"
MANAGER: Role = "manager"
ADMIN: Role = "admin"

announce = Producer("chat")
# `expected_manager` of a customer channel that exists with no manager (its
# manager lost the role): `ChatWork.save_channel`
UNASSIGNED = ""

METADATA_MAX_CHARS = 1024  # Chime's limit on a message's Metadata
_SAFE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?")
_CHIME_ID_MAX = 64


def _digest(value: str, length: int = 40) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def safe_id(prefix: str, value: str) -> str:
    """`prefix + value` when that is a valid Chime id made of `[A-Za-z0-9_-]`,
    else `prefix + "h." + sha256(value)`: the dot never occurs in the first form,
    so two different values never map to one id."""
    if _SAFE.fullmatch(value) and len(prefix) + len(value) <= _CHIME_ID_MAX:
        return prefix + value
    return f"{prefix}h.{_digest(value)}"


def chime_user_id(user_id: str) -> str:
    """The AppInstanceUserId of a platform user (docs/chat.md, "Identity")."""
    return safe_id("", user_id)


def user_arn(app_instance_arn: str, user_id: str) -> str:
    return f"{app_instance_arn}/user/{chime_user_id(user_id)}"


def channel_id_for(kind: ChannelKind, customer_id: str) -> str:
    """Deterministic, so a retried assignment finds the channel it made."""
    return safe_id(f"{kind}-", customer_id)


def request_token(kind: str, value: str) -> str:
    """A Chime ClientRequestToken (`[-_a-zA-Z0-9]{2,64}`) derived from `value`."""
    return f"{kind}-{_digest(value)}"


def role_of(groups: frozenset[str]) -> Role | None:
    if "manager" in groups:
        return MANAGER
    if "customer" in groups:
        return CUSTOMER
    if "admin" in groups:
        return ADMIN
    return None


@dataclass(frozen=True)
class Person:
    """Someone chat knows: their role, their username (the token's `username`)
    and, once made, their AppInstanceUser ARN."""

    user_id: str
    role: Role
    arn: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class Channel:
    channel_id: str
    kind: ChannelKind
    customer_id: str
    channel_arn: str
    manager_id: str | None = None  # the assigned manager (customer channels)

    @property
    def name(self) -> str:
        what = "Customer" if self.kind == "customer" else "Managers about"
        return f"{what} {self.customer_id}"[:256]


@dataclass(frozen=True)
class Caller:
    """Who is calling, as their current token says (the role is the token's)."""

    user_id: str
    role: Role | None

    @property
    def is_staff(self) -> bool:
        return self.role in (MANAGER, ADMIN)

    @property
    def is_manager(self) -> bool:
        return self.role == MANAGER


def may_read(channel: Channel, caller: Caller) -> bool:
    """Role first, then the channel (docs/chat.md, "Who reads what"): only a
    caller whose token says `manager` reads a managers channel; managers and
    admins read every customer channel; a customer reads only their own. A
    membership never lets anyone in: what the membership table says cannot
    widen what the token allows."""
    if channel.kind == "managers":
        return caller.role == MANAGER
    if caller.is_staff:
        return True
    return caller.role == CUSTOMER and caller.user_id == channel.customer_id


def may_stay(channel: Channel, role: Role | None, user_id: str) -> bool:
    """May someone with this role keep a membership of the channel? Only
    managers stay in managers channels and in other customers' channels."""
    if role == MANAGER:
        return True
    return channel.kind == "customer" and channel.customer_id == user_id and role == CUSTOMER


def ensure_readable(channel: Channel | None, caller: Caller) -> Channel:
    """404 rather than 403 for a channel the caller may not see: no existence leak."""
    if channel is None or not may_read(channel, caller):
        raise NotFound("no such channel", code="channel_not_found")
    return channel


def ensure_may_post(channel: Channel, caller: Caller, *, is_member: bool) -> bool:
    """True when the caller must be joined first (a manager who is not a member)."""
    ensure_readable(channel, caller)
    if is_member:
        return False
    if caller.role == MANAGER:
        return True
    raise Forbidden("only members and managers post to a channel", code="not_a_member")


def check_mentions(
    channel: Channel, sender: Caller, mentioned: dict[str, Person | None]
) -> list[str]:
    """The mentioned user ids, in order, once each may be mentioned here.
    Unknown users are refused; nobody who may not read the channel is mentioned
    into it; a customer mentions only managers."""
    refused: list[dict[str, str]] = []
    for user_id, person in mentioned.items():
        reason = _mention_refusal(channel, sender, user_id, person)
        if reason:
            refused.append({"user_id": user_id, "reason": reason})
    if refused:
        raise Unprocessable(
            "these users cannot be mentioned in this channel",
            code="mention_refused",
            details=refused,
        )
    return list(mentioned)


def _mention_refusal(
    channel: Channel, sender: Caller, user_id: str, person: Person | None
) -> str | None:
    if person is None:
        return "unknown_user"
    if user_id == sender.user_id:
        return "self_mention"
    if person.role == MANAGER:
        return None
    reason = None
    if channel.kind == "managers":
        reason = "not_a_manager"
    elif sender.role == CUSTOMER:
        reason = "customers_mention_managers_only"
    elif person.user_id != channel.customer_id:
        reason = "cannot_read_channel"
    return reason


@dataclass(frozen=True)
class DirectoryEntry:
    """A person as the identity provider knows them."""

    username: str | None
    groups: frozenset[str]


def assignment_refusal(
    user_id: str, wanted: Role, groups: frozenset[str] | None
) -> Unprocessable | None:
    """Why `user_id` cannot be assigned as `wanted` (a customer, or their
    manager), from the groups the identity provider (or chat's record of their
    own token) gives them; None: they can. Unknown people are refused."""
    code = "not_a_manager" if wanted == MANAGER else "not_a_customer"
    if groups is None:
        return Unprocessable(
            f"{user_id} is not known as a {wanted}",
            code=code,
            details={"user_id": user_id, "reason": "unknown_user"},
        )
    role = role_of(groups)
    if role != wanted:
        return Unprocessable(
            f"{user_id} is not a {wanted}",
            code=code,
            details={"user_id": user_id, "reason": "wrong_role", "role": role},
        )
    return None


@dataclass(frozen=True)
class Attachment:
    attachment_id: str
    owner_id: str
    key: str
    name: str
    size: int
    content_type: str
    channel_id: str | None = None
    message_id: str | None = None
    uploaded: bool = True
    deleted: bool = False  # its message was deleted: unreadable, its object being swept

    def ref(self) -> dict[str, object]:
        return {
            "attachment_id": self.attachment_id,
            "key": self.key,
            "name": self.name,
            "size": self.size,
            "content_type": self.content_type,
        }


def check_attachments(
    requested: list[str], found: dict[str, Attachment], sender_id: str
) -> list[Attachment]:
    """The sender's own, not yet attached uploads, in the order given."""
    refused = []
    for attachment_id in requested:
        attachment = found.get(attachment_id)
        if attachment is None or attachment.owner_id != sender_id:
            refused.append({"attachment_id": attachment_id, "reason": "unknown_attachment"})
        elif attachment.channel_id is not None:
            refused.append({"attachment_id": attachment_id, "reason": "already_attached"})
        elif not attachment.uploaded:
            refused.append({"attachment_id": attachment_id, "reason": "not_uploaded"})
    if refused:
        raise Unprocessable(
            "these attachments cannot be used", code="attachment_refused", details=refused
        )
    return [found[a] for a in requested]


def check_content(content: str, max_bytes: int) -> str:
    if not content.strip():
        raise Unprocessable("a message needs some content", code="empty_content")
    size = len(content.encode())
    if size > max_bytes:
        raise Unprocessable(
            f"the content is {size} bytes; at most {max_bytes} are allowed",
            code="content_too_long",
        )
    return content


@dataclass(frozen=True)
class MessageMetadata:
    """What Chime's `Metadata` says about a message: the full lists when they fit
    in 1024 characters, else counts and a reference to chat's message index."""

    message_id: str
    sender_id: str
    mentions: list[str] = field(default_factory=list)
    attachments: list[dict[str, object]] = field(default_factory=list)

    def encode(self) -> str:
        full = {
            "v": 1,
            "message_id": self.message_id,
            "sender_id": self.sender_id,
            "mentions": self.mentions,
            "attachments": self.attachments,
        }
        text = json.dumps(full, separators=(",", ":"), ensure_ascii=False)
        if len(text) <= METADATA_MAX_CHARS:
            return text
        compact = {
            "v": 1,
            "message_id": self.message_id,
            "sender_id": self.sender_id[:200],
            "ref": "chat-messages",
            "mention_count": len(self.mentions),
            "attachment_count": len(self.attachments),
        }
        return json.dumps(compact, separators=(",", ":"), ensure_ascii=False)


def excerpt(content: str, limit: int = 140) -> str:
    flat = " ".join(content.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def check_counts(
    mentions: list[str], attachment_ids: list[str], *, max_mentions: int, max_attachments: int
) -> tuple[list[str], list[str]]:
    """Duplicates dropped, order kept; too many is a 422 with its own code."""
    mentions = list(dict.fromkeys(mentions))
    attachment_ids = list(dict.fromkeys(attachment_ids))
    if len(mentions) > max_mentions:
        raise Unprocessable(
            f"at most {max_mentions} people may be mentioned", code="too_many_mentions"
        )
    if len(attachment_ids) > max_attachments:
        raise Unprocessable(
            f"at most {max_attachments} attachments per message", code="too_many_attachments"
        )
    return mentions, attachment_ids


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_file_name(name: str | None) -> str:
    """A display name only (never part of the S3 key): no path, no control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _CONTROL.sub("", base).strip()[:255]
    return base or "attachment"


def normalise_content_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def check_upload(content_type: str, size: int, *, allowed: tuple[str, ...], max_bytes: int) -> None:
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the file is {size} bytes; at most {max_bytes} are allowed",
            code="attachment_too_large",
        )
    if content_type not in allowed:
        raise UnsupportedMediaType(
            f"files of type {content_type or '(none)'!r} are not accepted",
            code="unsupported_content_type",
            details={"allowed": list(allowed)},
        )
    if size <= 0:
        raise Unprocessable("the file is empty", code="empty_file")


class UnsupportedMediaType(BelfryError):
    status = 415
    code = "unsupported_media_type"
