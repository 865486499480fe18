"""Recording fakes of chat's ports, and chat's use cases wired over them as
`services.chat.bootstrap` wires them: no broker, no moto, no emulator.

`FakeWork` is the real `shared.store.UnitOfWork` (compensations newest first,
`Stale(roles)`, the inbox, `__aexit__`) over a `Store` whose transaction is
applied to dicts, checking the conditions `services.chat.adapters.dynamo`
gives DynamoDB, all or nothing. `FakeChatChime` behaves as `ChimeChat` over
the Chime emulator does (a re-created channel is the same one, its members
unchanged: the adapter's ClientRequestToken is derived from the channel id)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from services.chat.assignments import Assignments
from services.chat.attachments import Attachments
from services.chat.bootstrap import use_cases
from services.chat.channels import Channels
from services.chat.domain import (
    UNASSIGNED,
    Attachment,
    Caller,
    Channel,
    DirectoryEntry,
    Message,
    Person,
    Role,
    chime_user_id,
)
from services.chat.edits import Edits
from services.chat.message_view import MessageRefused
from services.chat.messages import Messages
from services.chat.people import People
from services.chat.ports import AttachmentStore, ChatChime, ChatStore, ChatWork, Directory
from services.chat.reading import Reading
from services.chat.roles import RoleChanges
from services.chat.settings import ChatSettings
from shared.dynamo import MAX_TRANSACT_ITEMS, ConditionFailed, TransactItem
from shared.errors import ServiceUnavailable
from shared.events import Envelope
from shared.outbox import OutboxRow
from shared.store import Store, UnitOfWork

NOW = 1_800_000_000.0
ADMIN = Caller("admin-1", "admin")


def customer(user_id: str) -> Caller:
    return Caller(user_id, "customer")


def manager(user_id: str) -> Caller:
    return Caller(user_id, "manager")


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class InvalidTransaction(Exception):
    """What DynamoDB refuses outright (two writes to one item, too many items)."""


@dataclass(frozen=True)
class Membership:
    reason: str
    at: int


# --- the tables ---------------------------------------------------------------------


class FakeChatStore:
    """chat's tables in dicts. `log` records every transaction's outcome:
    "written", "seen" (the inbox knew the event), "stale:<roles>", "failed"."""

    def __init__(self) -> None:
        self.users: dict[str, Person] = {}
        self.channels: dict[str, Channel] = {}
        self.memberships: dict[tuple[str, str], Membership] = {}
        self.messages: dict[tuple[str, str], Message] = {}
        self.uploads: dict[str, Attachment] = {}
        self.created_at: dict[str, int] = {}
        self.inbox: set[tuple[str, str]] = set()
        self.published: list[Envelope] = []
        self.log: list[str] = []
        self._failure: str | BaseException | None = None
        self._race: Callable[[], Awaitable[object]] | None = None

    # test controls
    def fail_next_commit(self, *, stale: str | None = None, error: BaseException | None = None):
        """The next transaction fails: as if the items of role `stale` had their
        condition fail (-> `Stale`), or with `error`. Nothing is written."""
        if (stale is None) == (error is None):
            raise ValueError("give stale or error")
        self._failure = stale if stale is not None else error

    def before_next_commit(self, rival: Callable[[], Awaitable[object]]) -> None:
        """Run `rival` (another use case: a concurrent writer) just before the
        next transaction is checked; its own transaction goes through."""
        self._race = rival

    def members(self, channel_id: str) -> set[str]:
        return {user for (channel, user) in self.memberships if channel == channel_id}

    # work
    def work(self) -> FakeWork:
        return FakeWork(self)

    # people
    async def people(self, user_ids: Sequence[str]) -> dict[str, Person]:
        return {u: self.users[u] for u in dict.fromkeys(user_ids) if u in self.users}

    async def person(self, user_id: str) -> Person | None:
        return self.users.get(user_id)

    async def save_person(self, person: Person) -> None:
        known = self.users.get(person.user_id)
        arn = person.arn or (known.arn if known else None)  # an ARN is never forgotten
        username = person.username or (known.username if known else None)
        self.users[person.user_id] = Person(person.user_id, person.role, arn, username)

    async def people_with_role(self, role: Role, limit: int) -> list[Person]:
        named = [p for p in self.users.values() if p.role == role and p.username]
        return sorted(named, key=lambda p: p.username or "")[:limit]

    async def people_page(
        self, role: Role, cursor: str | None, limit: int
    ) -> tuple[list[Person], str | None]:
        named = sorted(
            (p for p in self.users.values() if p.role == role and p.username),
            key=lambda p: p.user_id,
        )
        after = [p for p in named if cursor is None or p.user_id > cursor]
        page = after[:limit]
        return page, (page[-1].user_id if len(after) > limit else None)

    # channels and memberships
    async def channel(self, channel_id: str) -> Channel | None:
        return self.channels.get(channel_id)

    async def channel_page(
        self, cursor: str | None, limit: int
    ) -> tuple[list[Channel], str | None]:
        ids = sorted(c for c in self.channels if cursor is None or c > cursor)
        page = [self.channels[c] for c in ids[:limit]]
        return page, (page[-1].channel_id if len(ids) > limit else None)

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        return (channel_id, user_id) in self.memberships

    async def channels_of(self, user_id: str) -> set[str]:
        return {channel for (channel, user) in self.memberships if user == user_id}

    # messages
    async def message_page(
        self, channel_id: str, cursor: str | None, limit: int
    ) -> tuple[list[Message], str | None]:
        ids = sorted(
            (m for (c, m) in self.messages if c == channel_id and (cursor is None or m < cursor)),
            reverse=True,
        )
        page = [self.messages[channel_id, m] for m in ids[:limit]]
        return page, (page[-1].message_id if len(ids) > limit else None)

    async def message(self, channel_id: str, message_id: str) -> Message | None:
        return self.messages.get((channel_id, message_id))

    async def refresh_last_message(self, message: Message) -> bool:
        return False  # no listing summaries here (tests/chat/test_edits_http.py has them)

    async def deleted_attachments(self) -> list[Attachment]:
        return [a for a in self.uploads.values() if a.deleted]

    async def forget_deleted(self, attachment_id: str) -> bool:
        found = self.uploads.get(attachment_id)
        if found is None or not found.deleted:
            return False
        del self.uploads[attachment_id]
        return True

    # attachments
    async def attachments(self, attachment_ids: Sequence[str]) -> dict[str, Attachment]:
        return {a: self.uploads[a] for a in dict.fromkeys(attachment_ids) if a in self.uploads}

    async def save_attachment(self, attachment: Attachment, created_at: int) -> None:
        if attachment.attachment_id in self.uploads:
            raise InvalidTransaction(f"attachment {attachment.attachment_id} exists")
        self.uploads[attachment.attachment_id] = attachment
        self.created_at[attachment.attachment_id] = created_at

    async def unattached_before(self, before: int) -> list[Attachment]:
        return [
            a
            for a in self.uploads.values()
            if a.channel_id is None and self.created_at[a.attachment_id] < before
        ]

    async def forget_unattached(self, attachment_id: str) -> bool:
        found = self.uploads.get(attachment_id)
        if found is None or found.channel_id is not None:
            return False
        del self.uploads[attachment_id], self.created_at[attachment_id]
        return True

    # the transaction
    async def transact(
        self,
        items: Sequence[TransactItem],
        events: Sequence[Envelope],
        once: tuple[str, str] | None,
        token: str | None,
    ) -> list[OutboxRow] | None:
        if self._race is not None:
            rival, self._race = self._race, None
            await rival()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self.log.append("failed" if isinstance(failure, BaseException) else f"stale:{failure}")
            if isinstance(failure, BaseException):
                raise failure
            at = [i for i, item in enumerate(items) if item["role"] == failure]
            raise ConditionFailed(at, ["ConditionalCheckFailed"] * len(at))
        keys = [item["key"] for item in items]
        if len(set(keys)) < len(keys) or len(items) + len(events) + bool(once) > (
            MAX_TRANSACT_ITEMS
        ):
            raise InvalidTransaction(f"DynamoDB refuses this transaction: {keys}")
        if once is not None and once in self.inbox:
            self.log.append("seen")
            return None
        failed = [i for i, item in enumerate(items) if not self._holds(item)]
        if failed:
            self.log.append("stale:" + ",".join(items[i]["role"] for i in failed))
            raise ConditionFailed(failed, ["ConditionalCheckFailed"] * len(failed))
        for item in items:
            self._apply(item)
        if once is not None:
            self.inbox.add(once)
        self.log.append("written")
        return [OutboxRow("0", f"fake#{e.event_id}", (e,)) for e in events]

    def _holds(self, item: TransactItem) -> bool:  # noqa: PLR0911 (one per kind of item)
        op = item["op"]
        if op == "save_channel":
            current = self.channels.get(item["channel"].channel_id)
            expected = item["expected_manager"]
            if expected is None:
                return current is None
            if expected == UNASSIGNED:
                return current is not None and current.manager_id is None
            return current is not None and current.manager_id == expected
        if op == "save_message":
            message: Message = item["message"]
            return (message.channel_id, message.message_id) not in self.messages
        if op in ("edit_message", "delete_message"):
            found = self.messages.get(item["key"][1:])
            return found is not None and not found.deleted
        if op == "retire_attachment":
            row = self.uploads.get(item["key"][1])
            return row is not None and row.message_id == item["message_id"]
        if op == "attach":
            wanted: Attachment = item["attachment"]
            row = self.uploads.get(wanted.attachment_id)
            return row is not None and row.owner_id == wanted.owner_id and row.channel_id is None
        return True  # memberships: unconditional puts and deletes

    def _apply(self, item: TransactItem) -> None:
        op = item["op"]
        if op == "save_channel":
            self.channels[item["channel"].channel_id] = item["channel"]
        elif op == "add_member":
            self.memberships[item["key"][1:]] = Membership(item["reason"], item["at"])
        elif op == "remove_member":
            self.memberships.pop(item["key"][1:], None)
        elif op == "save_message":
            message: Message = item["message"]
            self.messages[message.channel_id, message.message_id] = message
        elif op in ("edit_message", "delete_message"):
            changed: Message = item["message"]
            if op == "delete_message":
                changed = replace(changed, content="", mentions=(), attachments=())
            self.messages[changed.channel_id, changed.message_id] = changed
        elif op == "retire_attachment":
            row = self.uploads[item["key"][1]]
            self.uploads[row.attachment_id] = replace(row, deleted=True)
        elif op == "attach":
            row = self.uploads[item["attachment"].attachment_id]
            self.uploads[row.attachment_id] = replace(
                row, channel_id=item["channel_id"], message_id=item["message_id"], uploaded=True
            )


class FakeTransactions(Store):
    """A `Store` whose transaction is `FakeChatStore.transact` and whose
    publishing is appending to `published` (the outbox, delivered)."""

    def __init__(self, tables: FakeChatStore) -> None:
        super().__init__(cast(Any, None))  # no DynamoDB client: write and publish are ours
        self.tables = tables

    async def write(
        self,
        items: Sequence[TransactItem] = (),
        *,
        events: Sequence[Envelope] = (),
        once: tuple[str, str] | None = None,
        token: str | None = None,
    ) -> list[OutboxRow] | None:
        return await self.tables.transact(list(items), list(events), once, token)

    async def publish(self, rows: Sequence[OutboxRow]) -> None:
        self.tables.published.extend(e for row in rows for e in row.envelopes)


class FakeWork(UnitOfWork):
    """`services.chat.adapters.dynamo.ChatWork`'s methods, as items the fake checks."""

    def __init__(self, tables: FakeChatStore) -> None:
        super().__init__(FakeTransactions(tables))

    def save_channel(self, channel: Channel, *, expected_manager: str | None) -> None:
        item = {"op": "save_channel", "channel": channel, "expected_manager": expected_manager}
        self._add("channel", ("channels", channel.channel_id), item)

    def add_member(self, channel_id: str, user_id: str, reason: str, at: int) -> None:
        item = {"op": "add_member", "reason": reason, "at": at}
        self._add("membership", ("memberships", channel_id, user_id), item)

    def remove_member(self, channel_id: str, user_id: str) -> None:
        self._add("membership", ("memberships", channel_id, user_id), {"op": "remove_member"})

    def save_message(self, message: Message) -> None:
        key = ("messages", message.channel_id, message.message_id)
        self._add("message", key, {"op": "save_message", "message": message})

    def touch_channel(self, message: Message, seq: int) -> None:
        """Read state is not faked here (tests/chat/test_reading_units.py fakes it)."""

    def attach(self, attachment: Attachment, channel_id: str, message_id: str) -> None:
        item = {
            "op": "attach",
            "attachment": attachment,
            "channel_id": channel_id,
            "message_id": message_id,
        }
        self._add("attachment", ("attachments", attachment.attachment_id), item)

    def edit_message(self, message: Message) -> None:
        key = ("messages", message.channel_id, message.message_id)
        self._add("message", key, {"op": "edit_message", "message": message})

    def delete_message(self, message: Message) -> None:
        key = ("messages", message.channel_id, message.message_id)
        self._add("message", key, {"op": "delete_message", "message": message})

    def retire_attachment(self, attachment_id: str, message_id: str, at: int) -> None:
        item = {"op": "retire_attachment", "message_id": message_id, "at": at}
        self._add("attachment", ("attachments", attachment_id), item)

    def _add(self, role: str, key: tuple[str, ...], item: dict[str, Any]) -> None:
        self.add({**item, "role": role, "key": key}, role)


# --- Chime ------------------------------------------------------------------------------


@dataclass
class ChimeMessage:
    message_id: str
    sender_arn: str
    content: str
    metadata: str
    redacted: bool = False

    @property
    def meta(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.metadata)
        return value


@dataclass
class ChimeChannel:
    channel_id: str
    name: str
    members: set[str]  # chat's service user, the moderator, is not listed
    messages: dict[str, ChimeMessage] = field(default_factory=dict)


class FakeChatChime:
    """chat's AppInstance. `calls` records every call made, as (operation, args);
    `fail(operation)` makes the next calls of it raise `ServiceUnavailable`."""

    def __init__(self, app_instance_arn: str = "arn:aws:chime:us-east-1:1:app-instance/t") -> None:
        self.app_instance_arn = app_instance_arn
        self.service_user_arn = self.user_arn("belfry-chat-service")
        self.users: set[str] = {self.service_user_arn}
        self.channels: dict[str, ChimeChannel] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._failing: dict[str, int] = {}
        self._tokens: dict[str, str] = {}

    def fail(self, operation: str, times: int = 1) -> None:
        self._failing[operation] = times

    def called(self, operation: str) -> list[tuple[Any, ...]]:
        return [args for op, args in self.calls if op == operation]

    def members(self, channel_arn: str) -> set[str]:
        return set(self.channels[channel_arn].members)

    def messages(self, channel_arn: str) -> dict[str, ChimeMessage]:
        return dict(self.channels[channel_arn].messages)

    def _call(self, operation: str, *args: Any) -> None:
        self.calls.append((operation, args))
        if self._failing.get(operation, 0) > 0:
            self._failing[operation] -= 1
            raise ServiceUnavailable("the chat backend is unavailable", code="chime_unavailable")

    def _refuse(self, why: str) -> ServiceUnavailable:
        """What the adapter makes of Chime's BadRequest/NotFound: a 503."""
        return ServiceUnavailable(f"chime refused: {why}", code="chime_unavailable")

    def _channel(self, channel_arn: str) -> ChimeChannel:
        if channel_arn not in self.channels:
            raise self._refuse(f"no channel {channel_arn}")
        return self.channels[channel_arn]

    def _user(self, arn: str) -> str:
        if arn not in self.users:
            raise self._refuse(f"{arn} is not an AppInstanceUser")
        return arn

    def user_arn(self, user_id: str) -> str:
        return f"{self.app_instance_arn}/user/{chime_user_id(user_id)}"

    async def ensure_user(self, user_id: str) -> str:
        self._call("ensure_user", user_id)
        arn = self.user_arn(user_id)
        self.users.add(arn)
        return arn

    async def create_channel(self, channel_id: str, name: str, member_arns: Sequence[str]) -> str:
        self._call("create_channel", channel_id, name, tuple(member_arns))
        arn = f"{self.app_instance_arn}/channel/{channel_id}"
        members = {self._user(m) for m in member_arns}
        if arn not in self.channels:
            self.channels[arn] = ChimeChannel(channel_id, name, members)
        else:  # ChimeChat ends with the existing channel and the wanted members
            self.channels[arn].members |= members
        return arn

    async def add_member(self, channel_arn: str, member_arn: str) -> None:
        self._call("add_member", channel_arn, member_arn)
        self._channel(channel_arn).members.add(self._user(member_arn))

    async def remove_member(self, channel_arn: str, member_arn: str) -> None:
        self._call("remove_member", channel_arn, member_arn)
        self._channel(channel_arn).members.discard(member_arn)

    async def send_message(
        self, channel_arn: str, sender_arn: str, content: str, metadata: str, token: str
    ) -> str:
        self._call("send_message", channel_arn, sender_arn, content, metadata, token)
        channel = self._channel(channel_arn)
        if sender_arn not in channel.members:  # ChimeChat adds the sender and resends
            await self.add_member(channel_arn, sender_arn)
        if token not in self._tokens:
            self._tokens[token] = f"chime-{len(self._tokens) + 1}"
            message = ChimeMessage(self._tokens[token], sender_arn, content, metadata)
            channel.messages[message.message_id] = message
        return self._tokens[token]

    async def delete_message(self, channel_arn: str, message_id: str) -> None:
        self._call("delete_message", channel_arn, message_id)
        self._channel(channel_arn).messages.pop(message_id, None)

    async def update_message(
        self, channel_arn: str, sender_arn: str, message_id: str, content: str, metadata: str
    ) -> None:
        self._call("update_message", channel_arn, sender_arn, message_id, content, metadata)
        found = self._channel(channel_arn).messages.get(message_id)
        if found is None or found.redacted:
            raise MessageRefused("BadRequestException")
        if found.sender_arn != sender_arn:
            raise MessageRefused("ForbiddenException")
        found.content, found.metadata = content, metadata

    async def redact_message(self, channel_arn: str, message_id: str) -> None:
        self._call("redact_message", channel_arn, message_id)
        found = self._channel(channel_arn).messages.get(message_id)
        if found is not None:
            found.redacted = True

    async def mark_read(self, channel_arn: str, reader_arn: str) -> None:
        self._call("mark_read", channel_arn, reader_arn)


# --- the identity provider ----------------------------------------------------------------


class FakeDirectory:
    """A user pool: `groups` by user id (absent: no such user); `calls` counts
    look-ups (cached ones are not calls, as `CognitoDirectory` caches)."""

    authoritative = True

    def __init__(self, **groups: tuple[str, ...]) -> None:
        self.pool: dict[str, frozenset[str]] = {u: frozenset(g) for u, g in groups.items()}
        self.calls: list[tuple[str, bool]] = []
        self.forgotten: list[str] = []
        self.failing = False

    def set(self, user_id: str, *groups: str) -> None:
        self.pool[user_id] = frozenset(groups)

    async def find(self, user_id: str, *, fresh: bool = False) -> DirectoryEntry | None:
        self.calls.append((user_id, fresh))
        if self.failing:
            raise ServiceUnavailable("the pool is down", code="directory_unavailable")
        groups = self.pool.get(user_id)
        return None if groups is None else DirectoryEntry(f"{user_id}-name", groups)

    def forget(self, user_id: str) -> None:
        self.forgotten.append(user_id)


# --- S3 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    content_type: str


class FakeBucket:
    """The attachments bucket: objects by key; `complete_upload` is a browser's
    presigned POST arriving."""

    def __init__(self, bucket: str = "test-attachments") -> None:
        self.bucket = bucket
        self.objects: dict[str, StoredObject] = {}
        self.calls: list[tuple[str, str]] = []

    async def put(self, key: str, body: Any, content_type: str, size: int) -> None:
        self.calls.append(("put", key))
        self.objects[key] = StoredObject(bytes(body)[:size], content_type)

    async def size_of(self, key: str) -> int | None:
        found = self.objects.get(key)
        return None if found is None else len(found.body)

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        self.objects.pop(key, None)

    async def download_url(self, key: str, name: str, content_type: str, seconds: int) -> str:
        return f"https://{self.bucket}.s3.test/{key}?name={name}&expires={seconds}"

    async def upload_form(
        self, key: str, content_type: str, size: int, seconds: int
    ) -> dict[str, Any]:
        return {"url": f"https://{self.bucket}.s3.test/", "fields": {"key": key, "size": size}}

    def complete_upload(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = StoredObject(body, content_type)


# --- chat, wired over the fakes ------------------------------------------------------------


@dataclass
class FakeChat:
    store: FakeChatStore
    chime: FakeChatChime
    bucket: FakeBucket
    clock: FakeClock
    settings: ChatSettings
    people: People
    channels: Channels
    assignments: Assignments
    messages: Messages
    attachments: Attachments
    roles: RoleChanges
    edits: Edits
    directory: Directory
    reading: Reading | None = None  # with read-state tables (tests/chat/test_reading_units.py)

    def events(self, kind: str, **fields: Any) -> list[Any]:
        """Published envelopes of a type whose data has these values."""
        return [
            e
            for e in self.store.published
            if e.type == kind and all(getattr(e.data, k, None) == v for k, v in fields.items())
        ]


def default_pool() -> FakeDirectory:
    """The user pool of the unit tests: customers `c1`…`c9`, managers `m1`…`m9`,
    the admin `admin-1`. Anyone else is unknown to it."""
    pool = FakeDirectory(**{"admin-1": ("admin",)})
    for n in range(1, 10):
        pool.set(f"c{n}", "customer")
        pool.set(f"m{n}", "manager")
    return pool


def build_chat(
    settings: ChatSettings | None = None,
    *,
    now: float = NOW,
    directory: Directory | Literal["recorded"] | None = None,
) -> FakeChat:
    """chat's use cases, wired as `services.chat.bootstrap.build` wires them,
    over `directory` (default: `default_pool()`; "recorded": no user pool, the
    fallback of local runs)."""
    settings = settings or ChatSettings()
    tables, fake_chime, fake_bucket, clock = (
        FakeChatStore(),
        FakeChatChime(),
        FakeBucket(),
        FakeClock(now),
    )
    if directory is None:
        directory = default_pool()
    chosen = None if directory == "recorded" else directory
    cases = use_cases(tables, fake_chime, fake_bucket, settings, directory=chosen, clock=clock)
    return FakeChat(
        store=tables,
        chime=fake_chime,
        bucket=fake_bucket,
        clock=clock,
        settings=settings,
        directory=cases.roles.directory,
        **vars(cases),
    )


if TYPE_CHECKING:  # the fakes are the ports, as mypy sees them
    _store: ChatStore = FakeChatStore()
    _work: ChatWork = FakeChatStore().work()
    _chime: ChatChime = FakeChatChime()
    _bucket: AttachmentStore = FakeBucket()
    _directory: Directory = FakeDirectory()
