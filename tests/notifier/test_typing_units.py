"""The typing relay's rules without a broker: parsing, role first, membership,
rate limits, and who of this replica's sessions gets the frame."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable

import pytest

from services.notifier.typing_relay import (
    TypingRelay,
    channel_audience,
    may_type,
    on_user_typing,
    typing_request,
)
from shared.auth import Principal
from shared.events import Envelope, UserTyping


def person(user_id: str, *groups: str) -> Principal:
    return Principal(user_id, groups=frozenset(groups))


class Members:
    def __init__(self, channels: dict[str, set[str]]) -> None:
        self.channels = channels
        self.reads = 0

    async def members(self, channel_id: str) -> set[str]:
        self.reads += 1
        return set(self.channels.get(channel_id, set()))


class Sessions:
    """This replica's sessions: user -> principals of their open sockets."""

    def __init__(self, *people: Principal) -> None:
        self.people = people
        self.got: list[tuple[str, str, dict[str, object]]] = []

    def push_to(
        self,
        users: Iterable[str],
        key: str,
        frame_type: str,
        text: str,
        visible: Callable[[Principal], bool],
    ) -> int:
        wanted = set(users)
        sent = 0
        for principal in self.people:
            if principal.user_id in wanted and visible(principal):
                self.got.append((principal.user_id, key, json.loads(text)))
                sent += 1
        return sent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def relay(
    members: Members, sessions: Sessions, clock: Clock, published: list[Envelope]
) -> TypingRelay:
    async def publish(envelope: Envelope) -> None:
        published.append(envelope)
        assert isinstance(envelope.data, UserTyping)
        typing.deliver(envelope.data)  # as every replica's fan-out consumer does

    typing = TypingRelay(
        members=members, publish=publish, sessions=sessions, interval_seconds=2.0, clock=clock
    )
    return typing


def test_client_frames_are_parsed_strictly() -> None:
    assert typing_request('{"type": "typing", "channel_id": "customer-c1"}') == "customer-c1"
    for bad in (
        None,
        "not json",
        "[]",
        '{"type": "auth", "token": "x"}',
        '{"type": "typing"}',
        '{"type": "typing", "channel_id": 7}',
        '{"type": "typing", "channel_id": ""}',
        json.dumps({"type": "typing", "channel_id": "x" * 129}),
        json.dumps({"type": "typing", "channel_id": "customer-\nc1"}),
    ):
        assert typing_request(bad) is None, bad


def test_role_first_from_chats_channel_ids() -> None:
    own, hashed = channel_audience("customer-c1"), channel_audience("customer-h.ab12")
    managers = channel_audience("managers-c1")
    assert own is not None
    assert hashed is not None
    assert managers is not None
    assert channel_audience("ch-c1") is None
    assert channel_audience("customer-") is None
    c1, c2 = person("c1", "customer"), person("c2", "customer")
    mia, ada = person("mia", "manager"), person("ada", "admin")
    assert may_type(c1, own)
    assert not may_type(c2, own)
    assert may_type(mia, own)
    assert may_type(ada, own)
    assert may_type(mia, managers)
    assert not may_type(c1, managers)
    assert not may_type(ada, managers)
    assert may_type(c2, hashed)  # then membership alone decides (chat's invariant)
    assert not may_type(person("x"), own)


async def test_a_member_is_relayed_to_the_other_members_whose_token_may_see_it() -> None:
    members = Members({"customer-c1": {"c1", "mia", "old"}, "managers-c1": {"mia", "c1"}})
    sessions = Sessions(
        person("c1", "customer"),
        person("mia", "manager"),
        person("old", "customer"),  # a demoted manager still in the view
        person("c2", "customer"),
    )
    clock, published = Clock(), list[Envelope]()
    typing = relay(members, sessions, clock, published)

    assert typing.typed(person("mia", "manager"), "customer-c1")
    await asyncio.gather(*list(typing._inflight))
    assert [u for u, _, _ in sessions.got] == ["c1"]
    assert sessions.got[0][2] == {
        "type": "typing",
        "data": {"channel_id": "customer-c1", "user_id": "mia"},
    }
    event = published[0].data
    assert isinstance(event, UserTyping)
    assert event.recipients == ["c1", "old"]
    assert event.channel_kind == "customer"
    assert event.customer_id == "c1"

    # the managers channel: never to a customer, whatever the view says; a
    # customer's frame into it is refused
    sessions.got.clear()
    assert typing.typed(person("mia", "manager"), "managers-c1")
    assert typing.typed(person("c1", "customer"), "managers-c1")
    await asyncio.gather(*list(typing._inflight))
    assert sessions.got == []
    assert len(published) == 2


async def test_non_members_and_other_customers_are_ignored() -> None:
    members = Members({"customer-c1": {"c1", "mia"}})
    sessions = Sessions(person("c1", "customer"), person("mia", "manager"))
    published: list[Envelope] = []
    typing = relay(members, sessions, Clock(), published)
    for who in (person("c2", "customer"), person("zoe", "manager")):
        typing.typed(who, "customer-c1")
    typing.typed(person("c1", "customer"), "ch-unknown")  # not a chat channel: no read
    await asyncio.gather(*list(typing._inflight))
    assert published == []
    assert sessions.got == []
    assert members.reads == 2


async def test_the_rate_limit_drops_a_burst_to_one_per_interval() -> None:
    members = Members({f"customer-c{i}": {"mia", f"c{i}"} for i in range(20)})
    sessions = Sessions(*(person(f"c{i}", "customer") for i in range(20)))
    clock, published = Clock(), list[Envelope]()
    typing = relay(members, sessions, clock, published)
    mia = person("mia", "manager")
    accepted = [typing.typed(mia, "customer-c0") for _ in range(10)]
    assert accepted == [True] + [False] * 9
    clock.now += 1.9
    assert not typing.typed(mia, "customer-c0")
    clock.now += 0.2
    assert typing.typed(mia, "customer-c0")
    # per user over all channels: 10 per interval
    clock.now += 5
    spread = [typing.typed(mia, f"customer-c{i}") for i in range(1, 15)]
    assert spread.count(True) == 10
    await asyncio.gather(*list(typing._inflight))
    assert len(published) == 12


@pytest.mark.parametrize("fails", [KeyError("boom"), RuntimeError("x")])
async def test_the_fanout_handler_never_raises(fails: Exception) -> None:
    class Broken:
        def deliver(self, event: UserTyping) -> int:
            raise fails

    event = UserTyping(channel_id="customer-c1", user_id="mia", recipients=["c1"])
    envelope = Envelope.new(event, producer="notifier")
    await on_user_typing(event, envelope, typing=Broken())  # type: ignore[arg-type]


async def test_a_failed_publish_is_dropped_not_retried() -> None:
    calls = 0

    async def publish(envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("broker gone")

    typing = TypingRelay(
        members=Members({"customer-c1": {"c1", "mia"}}),
        publish=publish,
        sessions=Sessions(),
        interval_seconds=2.0,
    )
    assert typing.typed(person("mia", "manager"), "customer-c1")
    await asyncio.gather(*list(typing._inflight))
    assert calls == 1
