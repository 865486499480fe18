"""chime-sdk-messaging: channels, memberships and messages, with Chime's access rules.

Every call but GetMessagingSessionEndpoint names its caller in the
`x-amz-chime-bearer` header, which must be an AppInstanceUser of the channel's
AppInstance. Calls on a channel need the bearer to be a member; an
AppInstanceAdmin may also describe, list and delete channels and manage their
memberships without being one, but must be a member to read or send messages.
Channel events go to the WebSocket sessions of the channel's members only.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulators.chime.calls import Call, Handler, Output, paginate
from emulators.chime.config import EmulatorConfig
from emulators.chime.errors import ChimeError, bad_request, conflict, forbidden, not_found
from emulators.chime.identity import AppInstanceUser, Identity
from emulators.chime.sessions import SYSTEM, ChannelEvent

STANDARD_CONTENT_MAX_BYTES = 4096
CONTROL_CONTENT_MAX_BYTES = 30


@dataclass
class Membership:
    member_arn: str
    type: str
    invited_by: str
    created: float
    updated: float
    seq: int
    read_marker: float | None = None  # UpdateChannelReadMarker's time, if ever set


@dataclass
class Message:
    message_id: str
    channel_arn: str
    content: str
    metadata: str | None
    type: str
    persistence: str
    sender_arn: str
    created: float
    updated: float
    seq: int
    edited: float | None = None
    redacted: bool = False
    attributes: dict[str, Any] | None = None
    content_type: str | None = None
    target: list[dict[str, str]] | None = None

    def visible_to(self, user_arn: str) -> bool:
        if not self.target:
            return True
        return user_arn == self.sender_arn or any(
            t.get("MemberArn") == user_arn for t in self.target
        )


@dataclass
class Channel:
    arn: str
    app_instance_arn: str
    name: str
    mode: str
    privacy: str
    metadata: str | None
    created_by: str
    created: float
    updated: float
    extra: dict[str, Any] = field(default_factory=dict)
    last_message: float | None = None
    memberships: dict[str, Membership] = field(default_factory=dict)
    moderators: set[str] = field(default_factory=set)
    messages: dict[str, Message] = field(default_factory=dict)

    def members(self) -> frozenset[str]:
        return frozenset(self.memberships)


def _without_none(document: Output) -> Output:
    return {key: value for key, value in document.items() if value is not None}


class Messaging:
    def __init__(self, identity: Identity, config: EmulatorConfig) -> None:
        self._identity = identity
        self._config = config
        self.channels: dict[str, Channel] = {}
        self._channel_tokens: dict[tuple[str, str], str] = {}
        self._message_tokens: dict[tuple[str, str, str], Output] = {}
        self._seq = itertools.count()

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateChannel": self.create_channel,
            "DescribeChannel": self.describe_channel,
            "ListChannels": self.list_channels,
            "DeleteChannel": self.delete_channel,
            "CreateChannelMembership": self.create_channel_membership,
            "BatchCreateChannelMembership": self.batch_create_channel_membership,
            "DescribeChannelMembership": self.describe_channel_membership,
            "ListChannelMemberships": self.list_channel_memberships,
            "DeleteChannelMembership": self.delete_channel_membership,
            "ListChannelMembershipsForAppInstanceUser": (
                self.list_channel_memberships_for_app_instance_user
            ),
            "SendChannelMessage": self.send_channel_message,
            "GetChannelMessage": self.get_channel_message,
            "ListChannelMessages": self.list_channel_messages,
            "UpdateChannelMessage": self.update_channel_message,
            "DeleteChannelMessage": self.delete_channel_message,
            "RedactChannelMessage": self.redact_channel_message,
            "UpdateChannelReadMarker": self.update_channel_read_marker,
            "GetMessagingSessionEndpoint": self.get_messaging_session_endpoint,
        }

    # Who may do what.

    def _bearer(self, call: Call) -> AppInstanceUser:
        arn = call.input["ChimeBearer"]
        user = self._identity.users.get(arn)
        if user is None:
            raise forbidden(f"The bearer {arn} is not an AppInstanceUser")
        return user

    def _channel(self, arn: str) -> Channel:
        channel = self.channels.get(arn)
        if channel is None:
            raise not_found(f"The channel {arn} does not exist")
        return channel

    def _is_admin(self, channel: Channel, user: AppInstanceUser) -> bool:
        return self._identity.is_admin(channel.app_instance_arn, user.arn)

    def _enter(self, call: Call, *, admin_may: bool = False) -> tuple[Channel, AppInstanceUser]:
        """The channel and its caller, once the caller may act on it."""
        bearer = self._bearer(call)
        channel = self._channel(call.input["ChannelArn"])
        if bearer.app_instance_arn == channel.app_instance_arn:
            if bearer.arn in channel.memberships:
                return channel, bearer
            if admin_may and self._is_admin(channel, bearer):
                return channel, bearer
        raise forbidden(f"{bearer.arn} is not a member of the channel {channel.arn}")

    def _may_manage_members(self, channel: Channel, bearer: AppInstanceUser) -> None:
        if self._is_admin(channel, bearer) or bearer.arn in channel.moderators:
            return
        if channel.mode == "UNRESTRICTED" and bearer.arn in channel.memberships:
            return
        raise forbidden(
            f"{bearer.arn} may not add members to the RESTRICTED channel {channel.arn}: "
            "only moderators and AppInstanceAdmins may"
        )

    def _identity_of(self, arn: str) -> Output:
        user = self._identity.users.get(arn)
        return {"Arn": arn, "Name": user.name if user else ""}

    # Channels.

    def _channel_output(self, channel: Channel, *, full: bool) -> Output:
        summary = _without_none(
            {
                "Name": channel.name,
                "ChannelArn": channel.arn,
                "Mode": channel.mode,
                "Privacy": channel.privacy,
                "Metadata": channel.metadata,
                "LastMessageTimestamp": channel.last_message,
            }
        )
        if not full:
            return summary
        return {
            **summary,
            "CreatedBy": self._identity_of(channel.created_by),
            "CreatedTimestamp": channel.created,
            "LastUpdatedTimestamp": channel.updated,
            **channel.extra,
        }

    def _member_of_instance(self, arn: str, app_instance_arn: str) -> AppInstanceUser | None:
        user = self._identity.users.get(arn)
        return user if user is not None and user.app_instance_arn == app_instance_arn else None

    def create_channel(self, call: Call) -> Output:
        bearer = self._bearer(call)
        instance = self._identity.app_instance(call.input["AppInstanceArn"])
        if bearer.app_instance_arn != instance.arn:
            raise forbidden(f"The bearer {bearer.arn} is not in the AppInstance {instance.arn}")
        token_key = (instance.arn, call.input["ClientRequestToken"])
        known = self._channel_tokens.get(token_key)
        if known in self.channels:
            return {"ChannelArn": known}
        arn = f"{instance.arn}/channel/{call.get('ChannelId') or uuid.uuid4().hex}"
        if arn in self.channels:
            raise conflict(f"The channel {arn} already exists")
        moderators = [bearer.arn, *call.get("ModeratorArns", [])]
        members = [*moderators, *call.get("MemberArns", [])]
        for member_arn in members:
            if self._member_of_instance(member_arn, instance.arn) is None:
                raise bad_request(f"{member_arn} is not an AppInstanceUser of {instance.arn}")
        channel = Channel(
            arn=arn,
            app_instance_arn=instance.arn,
            name=call.input["Name"],
            mode=call.get("Mode", "UNRESTRICTED"),
            privacy=call.get("Privacy", "PUBLIC"),
            metadata=call.get("Metadata"),
            created_by=bearer.arn,
            created=call.now,
            updated=call.now,
            extra={
                name: call.input[name]
                for name in ("ExpirationSettings", "ElasticChannelConfiguration")
                if name in call.input
            },
        )
        for member_arn in members:
            if member_arn not in channel.memberships:
                channel.memberships[member_arn] = Membership(
                    member_arn, "DEFAULT", bearer.arn, call.now, call.now, next(self._seq)
                )
        channel.moderators.update(moderators)
        self.channels[arn] = channel
        self._channel_tokens[token_key] = arn
        return {"ChannelArn": arn}

    def describe_channel(self, call: Call) -> Output:
        channel, _ = self._enter(call, admin_may=True)
        return {"Channel": self._channel_output(channel, full=True)}

    def list_channels(self, call: Call) -> Output:
        bearer = self._bearer(call)
        instance = self._identity.app_instance(call.input["AppInstanceArn"])
        if bearer.app_instance_arn != instance.arn:
            raise forbidden(f"The bearer {bearer.arn} is not in the AppInstance {instance.arn}")
        privacy = call.get("Privacy")
        is_admin = self._identity.is_admin(instance.arn, bearer.arn)
        if privacy == "PRIVATE" and not is_admin:
            raise forbidden("Only an AppInstanceAdmin may list PRIVATE channels")
        wanted = privacy or (None if is_admin else "PUBLIC")
        ordered = sorted(
            (
                c
                for c in self.channels.values()
                if c.app_instance_arn == instance.arn and wanted in (None, c.privacy)
            ),
            key=lambda c: c.arn,
        )
        page, token = paginate(
            ordered,
            call,
            key=lambda c: c.arn,
            scope=f"channels:{instance.arn}:{wanted}",
            default_max=50,
        )
        return _without_none(
            {"Channels": [self._channel_output(c, full=False) for c in page], "NextToken": token}
        )

    def delete_channel(self, call: Call) -> Output:
        channel, bearer = self._enter(call, admin_may=True)
        if not (self._is_admin(channel, bearer) or bearer.arn in channel.moderators):
            raise forbidden("Only moderators and AppInstanceAdmins may delete a channel")
        del self.channels[channel.arn]
        call.events.append(
            ChannelEvent(
                "DELETE_CHANNEL",
                SYSTEM,
                self._channel_output(channel, full=True),
                channel.members(),
            )
        )
        return {}

    # Memberships.

    def _membership_output(self, channel: Channel, membership: Membership) -> Output:
        return {
            "InvitedBy": self._identity_of(membership.invited_by),
            "Type": membership.type,
            "Member": self._identity_of(membership.member_arn),
            "ChannelArn": channel.arn,
            "CreatedTimestamp": membership.created,
            "LastUpdatedTimestamp": membership.updated,
        }

    def _add_member(
        self, channel: Channel, member_arn: str, kind: str, bearer: AppInstanceUser, now: float
    ) -> Membership | None:
        """The new membership, or None if `member_arn` was a member already."""
        if member_arn in channel.memberships:
            return None
        if self._member_of_instance(member_arn, channel.app_instance_arn) is None:
            raise not_found(f"{member_arn} is not an AppInstanceUser of this AppInstance")
        membership = Membership(member_arn, kind, bearer.arn, now, now, next(self._seq))
        channel.memberships[member_arn] = membership
        return membership

    def create_channel_membership(self, call: Call) -> Output:
        channel, bearer = self._enter(call, admin_may=True)
        self._may_manage_members(channel, bearer)
        member_arn = call.input["MemberArn"]
        added = self._add_member(channel, member_arn, call.input["Type"], bearer, call.now)
        if added is not None:
            call.events.append(
                ChannelEvent(
                    "CREATE_CHANNEL_MEMBERSHIP",
                    SYSTEM,
                    self._membership_output(channel, added),
                    channel.members(),
                )
            )
        return {"ChannelArn": channel.arn, "Member": self._identity_of(member_arn)}

    def batch_create_channel_membership(self, call: Call) -> Output:
        channel, bearer = self._enter(call, admin_may=True)
        self._may_manage_members(channel, bearer)
        kind = call.get("Type", "DEFAULT")
        members: list[Output] = []
        errors: list[Output] = []
        added = False
        for member_arn in dict.fromkeys(call.input["MemberArns"]):
            try:
                membership = self._add_member(channel, member_arn, kind, bearer, call.now)
            except ChimeError as exc:  # reported per member, as Chime does
                errors.append(
                    {
                        "MemberArn": member_arn,
                        "ErrorCode": exc.kind.value,
                        "ErrorMessage": exc.message,
                    }
                )
                continue
            added = added or membership is not None
            members.append(self._identity_of(member_arn))
        batch = {
            "InvitedBy": self._identity_of(bearer.arn),
            "Type": kind,
            "Members": members,
            "ChannelArn": channel.arn,
        }
        if added:
            # Chime sends one batch event, not one per member, for non-elastic channels.
            call.events.append(
                ChannelEvent("BATCH_CREATE_CHANNEL_MEMBERSHIP", SYSTEM, batch, channel.members())
            )
        return {"BatchChannelMemberships": batch, "Errors": errors}

    def describe_channel_membership(self, call: Call) -> Output:
        channel, _ = self._enter(call, admin_may=True)
        membership = channel.memberships.get(call.input["MemberArn"])
        if membership is None:
            raise not_found(f"{call.input['MemberArn']} is not a member of {channel.arn}")
        return {"ChannelMembership": self._membership_output(channel, membership)}

    def list_channel_memberships(self, call: Call) -> Output:
        channel, _ = self._enter(call, admin_may=True)
        kind = call.get("Type", "DEFAULT")
        ordered = sorted(
            (m for m in channel.memberships.values() if m.type == kind), key=lambda m: m.seq
        )
        page, token = paginate(
            ordered,
            call,
            key=lambda m: m.seq,
            scope=f"members:{channel.arn}:{kind}",
            default_max=50,
        )
        return _without_none(
            {
                "ChannelArn": channel.arn,
                "ChannelMemberships": [{"Member": self._identity_of(m.member_arn)} for m in page],
                "NextToken": token,
            }
        )

    def delete_channel_membership(self, call: Call) -> Output:
        channel, bearer = self._enter(call, admin_may=True)
        member_arn = call.input["MemberArn"]
        leaving = member_arn == bearer.arn
        if not (leaving or self._is_admin(channel, bearer) or bearer.arn in channel.moderators):
            raise forbidden("Only moderators and AppInstanceAdmins may remove other members")
        membership = channel.memberships.get(member_arn)
        if membership is None:
            return {}  # already gone: a retried delete succeeds
        call.events.append(
            ChannelEvent(
                "DELETE_CHANNEL_MEMBERSHIP",
                SYSTEM,
                self._membership_output(channel, membership),
                channel.members(),
            )
        )
        del channel.memberships[member_arn]
        channel.moderators.discard(member_arn)
        return {}

    def list_channel_memberships_for_app_instance_user(self, call: Call) -> Output:
        bearer = self._bearer(call)
        user_arn = call.get("AppInstanceUserArn", bearer.arn)
        if user_arn != bearer.arn and not self._identity.is_admin(
            bearer.app_instance_arn, bearer.arn
        ):
            raise forbidden("Only an AppInstanceAdmin may list another user's memberships")
        ordered = sorted(
            (c for c in self.channels.values() if user_arn in c.memberships), key=lambda c: c.arn
        )
        page, token = paginate(
            ordered, call, key=lambda c: c.arn, scope=f"user-channels:{user_arn}", default_max=50
        )
        rows = [
            {
                "ChannelSummary": self._channel_output(c, full=False),
                "AppInstanceUserMembershipSummary": _without_none(
                    {
                        "Type": c.memberships[user_arn].type,
                        "ReadMarkerTimestamp": c.memberships[user_arn].read_marker,
                    }
                ),
            }
            for c in page
        ]
        return _without_none({"ChannelMemberships": rows, "NextToken": token})

    # Messages.

    def _message_output(self, message: Message, *, summary: bool = False) -> Output:
        return _without_none(
            {
                "ChannelArn": None if summary else message.channel_arn,
                "MessageId": message.message_id,
                "Content": None if message.redacted else message.content,
                "Metadata": None if message.redacted else message.metadata,
                "Type": message.type,
                "CreatedTimestamp": message.created,
                "LastUpdatedTimestamp": message.updated,
                "LastEditedTimestamp": message.edited,
                "Sender": self._identity_of(message.sender_arn),
                "Redacted": message.redacted,
                "Persistence": None if summary else message.persistence,
                "Status": {"Value": "SENT"},
                "MessageAttributes": message.attributes,
                "ContentType": message.content_type,
                "Target": message.target,
            }
        )

    @staticmethod
    def _check_content(kind: str, content: str, metadata: str | None) -> None:
        size = len(content.encode())
        if kind == "CONTROL":
            if size > CONTROL_CONTENT_MAX_BYTES:
                raise bad_request(
                    f"CONTROL message content is {size} bytes; the limit is "
                    f"{CONTROL_CONTENT_MAX_BYTES}"
                )
            if metadata is not None:
                raise bad_request("CONTROL messages cannot carry Metadata")
        elif size > STANDARD_CONTENT_MAX_BYTES:
            raise bad_request(
                f"STANDARD message content is {size} bytes; the limit is "
                f"{STANDARD_CONTENT_MAX_BYTES} (4 KB)"
            )

    def _recipients(self, channel: Channel, message: Message) -> frozenset[str]:
        return frozenset(arn for arn in channel.memberships if message.visible_to(arn))

    def send_channel_message(self, call: Call) -> Output:
        channel, bearer = self._enter(call)
        token_key = (channel.arn, bearer.arn, call.input["ClientRequestToken"])
        if token_key in self._message_tokens:
            return dict(self._message_tokens[token_key])
        kind, content = call.input["Type"], call.input["Content"]
        self._check_content(kind, content, call.get("Metadata"))
        message = Message(
            message_id=secrets.token_hex(32),
            channel_arn=channel.arn,
            content=content,
            metadata=call.get("Metadata"),
            type=kind,
            persistence=call.input["Persistence"],
            sender_arn=bearer.arn,
            created=call.now,
            updated=call.now,
            seq=next(self._seq),
            attributes=call.get("MessageAttributes"),
            content_type=call.get("ContentType"),
            target=call.get("Target"),
        )
        if message.persistence == "PERSISTENT":
            channel.messages[message.message_id] = message
        channel.last_message = call.now
        call.events.append(
            ChannelEvent(
                "CREATE_CHANNEL_MESSAGE",
                kind,
                self._message_output(message),
                self._recipients(channel, message),
            )
        )
        output = {
            "ChannelArn": channel.arn,
            "MessageId": message.message_id,
            "Status": {"Value": "SENT"},
        }
        self._message_tokens[token_key] = output
        return dict(output)

    def _message(self, channel: Channel, bearer: AppInstanceUser, message_id: str) -> Message:
        message = channel.messages.get(message_id)
        if message is None or not message.visible_to(bearer.arn):
            raise not_found(f"The message {message_id} does not exist in {channel.arn}")
        return message

    def get_channel_message(self, call: Call) -> Output:
        channel, bearer = self._enter(call)
        message = self._message(channel, bearer, call.input["MessageId"])
        return {"ChannelMessage": self._message_output(message)}

    def list_channel_messages(self, call: Call) -> Output:
        channel, bearer = self._enter(call)
        order = call.get("SortOrder", "DESCENDING")
        not_before, not_after = (
            None if stamp is None else round(stamp, 3)
            for stamp in (call.get("NotBefore"), call.get("NotAfter"))
        )
        descending = order == "DESCENDING"
        ordered = sorted(
            (
                m
                for m in channel.messages.values()
                if m.visible_to(bearer.arn)
                and (not_before is None or m.created >= not_before)
                and (not_after is None or m.created <= not_after)
            ),
            key=lambda m: (m.created, m.seq),
            reverse=descending,
        )
        page, token = paginate(
            ordered,
            call,
            key=lambda m: [m.created, m.seq],
            scope=f"messages:{channel.arn}:{order}:{not_before}:{not_after}",
            default_max=50,
            descending=descending,
        )
        return _without_none(
            {
                "ChannelArn": channel.arn,
                "ChannelMessages": [self._message_output(m, summary=True) for m in page],
                "NextToken": token,
            }
        )

    def update_channel_message(self, call: Call) -> Output:
        channel, bearer = self._enter(call)
        message = self._message(channel, bearer, call.input["MessageId"])
        if message.sender_arn != bearer.arn:
            raise forbidden("Members may edit only their own messages")
        if message.redacted:
            raise bad_request("A redacted message cannot be edited")
        # Metadata left out of an update stays as it was.
        metadata = call.input.get("Metadata", message.metadata)
        self._check_content(message.type, call.input["Content"], metadata)
        message.content = call.input["Content"]
        message.metadata = metadata
        if "ContentType" in call.input:
            message.content_type = call.input["ContentType"]
        message.edited = message.updated = call.now
        call.events.append(
            ChannelEvent(
                "UPDATE_CHANNEL_MESSAGE",
                message.type,
                self._message_output(message),
                self._recipients(channel, message),
            )
        )
        return {
            "ChannelArn": channel.arn,
            "MessageId": message.message_id,
            "Status": {"Value": "SENT"},
        }

    def _may_remove_message(self, channel: Channel, bearer: AppInstanceUser, msg: Message) -> None:
        if msg.sender_arn == bearer.arn or bearer.arn in channel.moderators:
            return
        if self._is_admin(channel, bearer):
            return
        raise forbidden("Only the sender, moderators and AppInstanceAdmins may do this")

    def delete_channel_message(self, call: Call) -> Output:
        channel, bearer = self._enter(call)
        message = self._message(channel, bearer, call.input["MessageId"])
        self._may_remove_message(channel, bearer, message)
        recipients = self._recipients(channel, message)
        del channel.messages[message.message_id]
        # Deleted messages vanish from Get/List; the event carries no content.
        payload = self._message_output(message)
        payload.pop("Content", None)
        payload.pop("Metadata", None)
        call.events.append(
            ChannelEvent("DELETE_CHANNEL_MESSAGE", message.type, payload, recipients)
        )
        return {}

    def redact_channel_message(self, call: Call) -> Output:
        channel, bearer = self._enter(call)
        message = self._message(channel, bearer, call.input["MessageId"])
        self._may_remove_message(channel, bearer, message)
        message.redacted = True
        message.updated = call.now
        call.events.append(
            ChannelEvent(
                "REDACT_CHANNEL_MESSAGE",
                message.type,
                self._message_output(message),
                self._recipients(channel, message),
            )
        )
        return {"ChannelArn": channel.arn, "MessageId": message.message_id}

    # The messaging session.

    def update_channel_read_marker(self, call: Call) -> Output:
        """The bearer's read marker on the channel: now (members only; no event,
        as in Chime the marker is visible in the membership-for-user APIs)."""
        channel, bearer = self._enter(call)
        channel.memberships[bearer.arn].read_marker = call.now
        return {"ChannelArn": channel.arn}

    def get_messaging_session_endpoint(self, call: Call) -> Output:
        # Real Chime answers a bare host name and clients open wss://<Url>/connect;
        # here it is host:port of the emulator, for ws://<Url>/connect.
        return {"Endpoint": {"Url": self._config.messaging_endpoint or call.host}}
