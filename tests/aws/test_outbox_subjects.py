"""The outbox over moto: rows of a committed transaction are published (each
subject's in order, subjects concurrently) and the confirmed ones deleted in
batches; a room whose publish fails keeps its rows, in order, for the relay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from shared.aws import AwsClients
from shared.bus import BusHealth, DeadLetter, EventBus, PublishFailed
from shared.dynamo import ensure_tables, transact
from shared.events import Envelope, RoomCancelled, RoomEnded
from shared.outbox import OUTBOX_TABLE, Outbox


class FlakyBus(EventBus):
    """Records publishes; refuses the event types it is told to."""

    transport = "fake"

    def __init__(self, refuse: set[str]) -> None:
        super().__init__("scheduler")
        self.refuse = refuse
        self.published: list[str] = []

    async def publish(self, envelope: Envelope) -> None:
        key = f"{envelope.type}:{envelope.data.room_id}"  # type: ignore[attr-defined]
        if key in self.refuse:
            raise PublishFailed("nack")
        self.published.append(key)

    async def start(self) -> None: ...

    async def declare(self, queues: Mapping[str, Sequence[str]]) -> None: ...

    async def stop_consuming(self, drain_timeout: float = 10.0) -> None: ...

    async def close(self) -> None: ...

    def health(self) -> BusHealth:
        return BusHealth(True, "fake")

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        return []

    async def replay_dead_letters(self, queue: str, limit: int = 1000) -> int:
        return 0


@pytest.fixture
async def outbox_table(aws: AwsClients, test_id: str) -> str:
    tables = await ensure_tables(aws.dynamodb, test_id, "scheduler", [OUTBOX_TABLE])
    return tables["outbox"]


async def test_rooms_publish_independently_and_failures_stay_in_order(
    aws: AwsClients, outbox_table: str
) -> None:
    bus = FlakyBus(refuse={"RoomCancelled:r7"})
    outbox = Outbox(aws.dynamodb, outbox_table, bus)
    events = [
        Envelope.new(RoomEnded(room_id=f"r{i}", ended_at=i), producer="scheduler")
        for i in range(60)
    ]
    cancel = Envelope.new(RoomCancelled(room_id="r7", cancelled_by="ada"), producer="scheduler")
    ended = Envelope.new(RoomEnded(room_id="r7", ended_at=7), producer="scheduler")
    rows = [outbox.row(e) for e in (*events, cancel, ended)]
    for start in range(0, len(rows), 25):
        await transact(aws.dynamodb, [r.item(outbox_table) for r in rows[start : start + 25]])

    sent = await outbox.dispatch(rows)

    # r7's RoomEnded went first; its RoomCancelled was refused, so the RoomEnded
    # after it waits too; every other room's event went out regardless
    assert sent == 60
    assert set(bus.published) == {f"RoomEnded:r{i}" for i in range(60)}
    left = await outbox.pending(older_than_seconds=0)
    assert {r.envelopes[0].event_id for r in left} == {cancel.event_id, ended.event_id}

    bus.refuse.clear()
    assert await outbox.flush() == 2
    assert set(bus.published[-2:]) == {"RoomCancelled:r7", "RoomEnded:r7"}
    assert await outbox.pending(older_than_seconds=0) == []


async def test_one_row_holds_a_commits_events_and_stays_until_all_are_published(
    aws, outbox_table: str
) -> None:
    bus = FlakyBus(refuse={"RoomCancelled:r2"})
    outbox = Outbox(aws.dynamodb, outbox_table, bus)
    first = Envelope.new(RoomEnded(room_id="r1", ended_at=1), producer="scheduler")
    refused = Envelope.new(RoomCancelled(room_id="r2", cancelled_by="ada"), producer="scheduler")
    row = outbox.row(first, refused)
    await transact(aws.dynamodb, [row.item(outbox_table)])  # one item for both

    assert await outbox.dispatch([row]) == 1
    [left] = await outbox.pending(older_than_seconds=0)
    assert [e.event_id for e in left.envelopes] == [first.event_id, refused.event_id]

    bus.refuse.clear()
    assert await outbox.flush() == 2  # at least once: r1's event goes again
    assert bus.published[-2:] == ["RoomEnded:r1", "RoomCancelled:r2"]
    assert await outbox.pending(older_than_seconds=0) == []


async def test_a_row_of_one_event_as_an_older_writer_left_it_is_still_relayed(
    aws, outbox_table: str
) -> None:
    bus = FlakyBus(refuse=set())
    outbox = Outbox(aws.dynamodb, outbox_table, bus)
    old = Envelope.new(RoomEnded(room_id="r9", ended_at=9), producer="scheduler")
    item = {
        "shard": {"S": "0"},
        "id": {"S": f"0000000000001#{old.event_id}"},
        "envelope": {"S": old.encode().decode()},
        "event_type": {"S": old.type},
    }
    await aws.dynamodb.put_item(TableName=outbox_table, Item=item)
    assert await outbox.flush() == 1
    assert bus.published == ["RoomEnded:r9"]
