"""The feed writer's queue: which waiting appends go into the next transaction."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from shared.dynamo import MAX_TRANSACT_ITEMS

from ..domain import FeedEntry

# How far down the queue a transaction looks for appends that do not touch a
# feed being written.
SCAN = 1000


@dataclass
class Append:
    key: str
    entries: list[FeedEntry]
    notify: set[str]
    done: asyncio.Future[bool]

    @property
    def users(self) -> set[str]:
        return {e.user_id for e in self.entries}


@dataclass
class Tx:
    appends: list[Append] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)  # user -> rows in this tx

    def cost_with(self, append: Append) -> int:
        new_users = append.users - self.users.keys()
        rows = sum(self.users.values()) + len(append.entries)
        return len(self.appends) + 1 + rows + len(self.users) + len(new_users)


def take(pending: deque[Append], busy: set[str]) -> Tx:
    """The next transaction, in arrival order per person: an append that
    touches a feed being written (or a key already in this transaction: a
    redelivery) waits, and so does every later one touching its people."""
    tx = Tx()
    keys: set[str] = set()
    blocked = set(busy)
    waiting: list[Append] = []
    for _ in range(min(len(pending), SCAN)):
        append = pending.popleft()
        users = append.users
        if users & blocked or append.key in keys:
            blocked |= users
            waiting.append(append)
            continue
        if tx.appends and tx.cost_with(append) > MAX_TRANSACT_ITEMS:
            waiting.append(append)
            break
        tx.appends.append(append)
        keys.add(append.key)
        for entry in append.entries:
            tx.users[entry.user_id] = tx.users.get(entry.user_id, 0) + 1
    pending.extendleft(reversed(waiting))
    return tx
