"""Who left leaves no stale record on any replica: a join recorded on one
replica is not added back to its fresh member lists after a peer deleted the
row, once the ChannelLeft passed this replica's fan-out queue."""

from __future__ import annotations

from typing import Any

from services.notifier.adapters.members import DynamoMembers
from services.notifier.domain import Audience
from services.notifier.fanout import ReceiptWatcher
from services.notifier.handlers import on_fanout_left
from shared.events import ChannelLeft, Envelope


class SharedTable:
    """One members table that two replicas' clients talk to."""

    def __init__(self) -> None:
        self.rows: set[tuple[str, str]] = set()

    async def query(self, **kwargs: Any) -> dict[str, Any]:
        channel = kwargs["ExpressionAttributeValues"][":c"]["S"]
        return {"Items": [{"user_id": {"S": u}} for c, u in self.rows if c == channel]}

    async def get_item(self, **kwargs: Any) -> dict[str, Any]:
        key = (kwargs["Key"]["channel_id"]["S"], kwargs["Key"]["user_id"]["S"])
        return {"Item": {}} if key in self.rows else {}

    async def put_item(self, **kwargs: Any) -> dict[str, Any]:
        item = kwargs["Item"]
        self.rows.add((item["channel_id"]["S"], item["user_id"]["S"]))
        return {}

    async def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        self.rows.discard((kwargs["Key"]["channel_id"]["S"], kwargs["Key"]["user_id"]["S"]))
        return {}


class NoFeed:
    def written_here(self, key: str) -> bool:
        return True

    async def receipts(self, keys: Any) -> dict[str, set[str]]:
        return {}

    async def append(self, *args: Any) -> bool:
        return True


class NoSessions:
    def poke(self, users: Any) -> None:
        return None

    def interested(self, audience: Audience) -> bool:
        return False


async def test_a_peer_that_recorded_the_join_forgets_it_on_channel_left() -> None:
    table = SharedTable()
    here = DynamoMembers(table, "members", cache_seconds=0)  # type: ignore[arg-type]
    peer = DynamoMembers(table, "members", cache_seconds=0)  # type: ignore[arg-type]
    await here.add("customer-c1", "ivy", "manual")  # the join was recorded here
    assert await here.members("customer-c1") == {"ivy"}
    await peer.remove("customer-c1", "ivy")  # the leave's row deleted by the peer
    assert not await here.is_member("customer-c1", "ivy")
    # without the fan-out, this replica would add its recent join back (30 s)
    assert await here.members("customer-c1") == {"ivy"}

    left = ChannelLeft(
        channel_id="customer-c1",
        channel_arn="arn:aws:chime:us-east-1:1:app-instance/a/channel/c",
        user_id="ivy",
        reason="manual",
        channel_kind="customer",
        customer_id="c1",
    )
    watcher = ReceiptWatcher(feed=NoFeed(), hub=NoSessions())  # type: ignore[arg-type]
    await on_fanout_left(
        left,
        Envelope.new(left, producer="chat"),
        watcher=watcher,
        hub=NoSessions(),
        members=here,
    )
    assert await here.members("customer-c1") == set()
    await here.add("customer-c1", "ivy", "mention")  # a later lazy join counts again
    assert await here.members("customer-c1") == {"ivy"}
