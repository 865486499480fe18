"""Read state over fakes: the arithmetic of unread counts (services/chat/unread.py)
and the `Reading` use case (marks, the listing) over an in-memory `ReadStore`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from services.chat.domain import Caller, Channel
from services.chat.reading import Reading
from services.chat.unread import (
    ReadState,
    Summary,
    advanced,
    listing_fields,
    unread_count,
    unread_mentions,
)
from shared.errors import NotFound
from shared.events import ChannelRead, Envelope
from shared.pages import decode_cursor, encode_cursor

from .fakes import ADMIN, FakeChat, build_chat, customer, manager

# --- the arithmetic --------------------------------------------------------------------


def test_unread_is_the_channels_number_minus_the_mark() -> None:
    assert unread_count(None, None) == 0
    assert unread_count(Summary("x", seq=5), None) == 5
    assert unread_count(Summary("x", seq=5), ReadState(read_seq=3)) == 2
    assert unread_count(Summary("x", seq=5), ReadState(read_seq=7)) == 0  # never negative


def test_mentions_count_only_after_the_mark() -> None:
    assert unread_mentions(None) == 0
    assert unread_mentions(ReadState(mentions=(1, 4))) == 2
    assert unread_mentions(ReadState(read_seq=2, mentions=(1, 4))) == 1


def test_a_mark_only_moves_forward_and_drops_the_mentions_it_covers() -> None:
    assert advanced(ReadState(read_seq=4), 4, "m4") is None
    assert advanced(ReadState(read_seq=4), 2, "m2") is None
    after = advanced(ReadState(read_seq=1, mentions=(2, 5, 7)), 5, "m5")
    assert after == ReadState(read_seq=5, up_to="m5", mentions=(7,))
    assert advanced(None, 0, "old") == ReadState(read_seq=0, up_to="old")


def test_listing_fields() -> None:
    last = {"message_id": "m2", "excerpt": "hi", "sender_id": "c1", "posted_at": "t"}
    fields = listing_fields(Summary("x", 3, "a", last), ReadState(read_seq=1, mentions=(3,)))
    assert fields == {"unread_count": 2, "unread_mentions": 1, "last_message": last}
    assert listing_fields(None, None)["last_message"] is None


# --- the use case over an in-memory ReadStore --------------------------------------------


@dataclass
class FakeReads:
    chat: FakeChat
    summaries: dict[str, Summary] = field(default_factory=dict)
    states: dict[tuple[str, str], ReadState] = field(default_factory=dict)
    seqs: dict[tuple[str, str], int] = field(default_factory=dict)
    events: list[Envelope] = field(default_factory=list)
    races: int = 0  # how many save_read calls to refuse as "changed meanwhile"

    def posted(
        self, channel_id: str, message_id: str, *, by: str = "", mentions: Sequence[str] = ()
    ) -> int:
        old = self.summaries.get(channel_id, Summary(channel_id))
        seq = old.seq + 1
        self.seqs[channel_id, message_id] = seq
        last = {"message_id": message_id, "excerpt": "x", "sender_id": by, "posted_at": "t"}
        self.summaries[channel_id] = Summary(channel_id, seq, f"{message_id}#{channel_id}", last)
        for user in mentions:
            state = self.states.get((user, channel_id), ReadState())
            self.states[user, channel_id] = ReadState(
                state.read_seq, state.up_to, (*state.mentions, seq)
            )
        return seq

    async def next_seq(self, channel_id: str) -> int:
        raise AssertionError("not used by Reading")

    async def message_seq(self, channel_id: str, message_id: str) -> int | None:
        return self.seqs.get((channel_id, message_id))

    async def state_and_summary(
        self, user_id: str, channel_id: str
    ) -> tuple[ReadState | None, Summary | None]:
        return self.states.get((user_id, channel_id)), self.summaries.get(channel_id)

    async def save_read(
        self,
        user_id: str,
        channel_id: str,
        state: ReadState,
        read_at: str,
        *,
        expected: ReadState | None,
        event: Envelope,
    ) -> bool:
        if self.races:
            self.races -= 1
            return False
        if self.states.get((user_id, channel_id)) != expected:
            return False
        self.states[user_id, channel_id] = state
        self.events.append(event)
        return True

    async def activity_page(
        self, cursor: str | None, limit: int
    ) -> tuple[list[Summary], str | None]:
        start = decode_cursor(cursor, names=("activity",))
        ordered = sorted(self.summaries.values(), key=lambda s: s.activity, reverse=True)
        if start:
            ordered = [s for s in ordered if s.activity < start["activity"]["S"]]
        page = ordered[:limit]
        more = len(ordered) > limit
        next_cursor = encode_cursor({"activity": {"S": page[-1].activity}}) if more else None
        # the first channel's summary has no copy of the channel (a row of before)
        return [
            replace(s, channel=self.chat.store.channels.get(s.channel_id)) if n else s
            for n, s in enumerate(page)
        ], next_cursor

    async def rows(
        self,
        user_id: str,
        channel_ids: Sequence[str],
        *,
        channels: bool = True,
        summaries: bool = True,
        memberships: bool = True,
    ) -> tuple[dict[str, Channel], dict[str, Summary], dict[str, ReadState], set[str]]:
        stored = self.chat.store.channels
        found = {c: stored[c] for c in channel_ids if c in stored} if channels else {}
        rows = {c: self.summaries[c] for c in channel_ids if c in self.summaries}
        states = {
            c: self.states[u, c] for (u, c) in self.states if u == user_id and c in channel_ids
        }
        members = {c for c in channel_ids if user_id in self.chat.store.members(c)}
        return found, rows if summaries else {}, states, members if memberships else set()


async def reading_world() -> tuple[FakeChat, FakeReads, Reading]:
    chat = build_chat()
    for c, m in (("c1", "m1"), ("c2", "m1")):
        await chat.assignments.assign(ADMIN, c, m)
    reads = FakeReads(chat)
    for channel_id in chat.store.channels:
        reads.summaries[channel_id] = Summary(channel_id, 0, f"0000000000000-0#{channel_id}")
    reading = Reading(chat.store, reads, chat.chime, chat.channels, page_size=2)
    return chat, reads, reading


async def test_a_mark_moves_once_emits_its_event_and_mirrors_to_chime() -> None:
    chat, reads, reading = await reading_world()
    reads.posted("customer-c1", "a", by="c1")
    reads.posted("customer-c1", "b", by="c1", mentions=["m1"])
    assert await reading.mark_read(manager("m1"), "customer-c1", "a") is True
    [event] = reads.events
    assert isinstance(event.data, ChannelRead)
    assert (event.type, event.data.up_to, event.data.unread_count) == ("ChannelRead", "a", 1)
    assert event.data.channel_kind == "customer"
    assert len(chat.chime.called("mark_read")) == 1
    assert await reading.mark_read(manager("m1"), "customer-c1", "a") is False  # not newer
    assert len(reads.events) == 1
    assert len(chat.chime.called("mark_read")) == 1


async def test_a_mark_of_an_unknown_message_or_channel_is_404() -> None:
    _, reads, reading = await reading_world()
    reads.posted("customer-c2", "theirs", by="c2")
    with pytest.raises(NotFound) as error:
        await reading.mark_read(customer("c1"), "customer-c1", "theirs")
    assert error.value.error_code == "message_not_found"
    with pytest.raises(NotFound) as error:
        await reading.mark_read(customer("c1"), "customer-c2", "theirs")  # not their channel
    assert error.value.error_code == "channel_not_found"
    assert reads.events == []


async def test_a_mark_racing_another_write_reads_again() -> None:
    _, reads, reading = await reading_world()
    reads.posted("customer-c1", "a", by="m1")
    reads.races = 2
    assert await reading.mark_read(customer("c1"), "customer-c1", "a") is True
    assert reads.states["c1", "customer-c1"].read_seq == 1


async def test_chime_failing_does_not_fail_the_mark() -> None:
    chat, reads, reading = await reading_world()
    reads.posted("customer-c1", "a", by="m1")

    async def broken(channel_arn: str, reader_arn: str) -> None:
        raise RuntimeError("chime is down")

    chat.chime.mark_read = broken  # type: ignore[method-assign]
    assert await reading.mark_read(customer("c1"), "customer-c1", "a") is True
    assert len(reads.events) == 1


async def test_a_manager_who_is_no_member_marks_without_a_chime_marker() -> None:
    chat, reads, reading = await reading_world()
    reads.posted("customer-c1", "a", by="c1")
    assert await reading.mark_read(manager("m2"), "customer-c1", "a") is True
    assert chat.chime.called("mark_read") == []


async def test_the_list_is_newest_first_paged_and_role_first() -> None:
    _, reads, reading = await reading_world()
    reads.posted("customer-c2", "0002", by="c2")
    reads.posted("customer-c1", "0003", by="c1")
    seen: list[str] = []
    cursor = None
    while True:
        page = await reading.list(manager("m1"), cursor)
        seen += [c["channel_id"] for c in page["channels"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:2] == ["customer-c1", "customer-c2"]
    first = (await reading.list(manager("m1"), None))["channels"]
    assert [c["is_member"] for c in first] == [True, True]  # assigned: in both
    assert first[0]["last_message"]["message_id"] == "0003"
    assert first[0]["unread_count"] == 1
    other = (await reading.list(manager("m2"), None))["channels"]
    assert [c["is_member"] for c in other] == [False, False]
    assert sorted(seen) == sorted(reads.summaries)
    admin = await reading.list(Caller("admin-1", "admin"), None)
    assert all(c["kind"] == "customer" for c in admin["channels"])
    own = await reading.list(customer("c1"), None)
    assert [c["channel_id"] for c in own["channels"]] == ["customer-c1"]
    assert own["channels"][0]["unread_count"] == 1
    assert (await reading.list(customer("c9"), None))["channels"] == []
