"""Lazy joins coalesced per channel: joins due on one channel within a short
window go to Chime as one BatchCreateChannelMembership (up to 100 members)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.logging import get_logger

log = get_logger("belfry.notifier")

AddMembers = Callable[[str, list[str]], Awaitable[dict[str, str | None]]]
MAX_BATCH = 100


class JoinFailed(Exception):
    """Chime refused this one member (its error code is in `code`)."""

    def __init__(self, member_arn: str, code: str) -> None:
        super().__init__(f"{member_arn}: {code}")
        self.code = code


@dataclass
class _Batch:
    members: dict[str, asyncio.Future[None]] = field(default_factory=dict)


class JoinBatcher:
    def __init__(self, add_members: AddMembers, *, window_seconds: float) -> None:
        self._add_members = add_members
        self._window = window_seconds
        self._open: dict[str, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0

    async def join(self, channel_arn: str, member_arn: str) -> None:
        """Return once the AppInstanceUser is a member of the channel; raise
        `JoinFailed` or the gateway's error otherwise."""
        batch = self._open.get(channel_arn)
        if batch is None:
            batch = self._open[channel_arn] = _Batch()
            self._spawn(self._flush_later(channel_arn, batch))
        future = batch.members.get(member_arn)
        if future is None:
            future = batch.members[member_arn] = asyncio.get_running_loop().create_future()
        if len(batch.members) >= MAX_BATCH:
            self._close(channel_arn, batch)
            self._spawn(self._flush(channel_arn, batch))
        await asyncio.shield(future)

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close(self, channel_arn: str, batch: _Batch) -> bool:
        if self._open.get(channel_arn) is batch:
            del self._open[channel_arn]
            return True
        return False

    async def _flush_later(self, channel_arn: str, batch: _Batch) -> None:
        if self._window:
            await asyncio.sleep(self._window)
        if self._close(channel_arn, batch):
            await self._flush(channel_arn, batch)

    async def _flush(self, channel_arn: str, batch: _Batch) -> None:
        users = list(batch.members)
        self.calls += 1
        try:
            result = await self._add_members(channel_arn, users)
        except Exception as exc:
            for future in batch.members.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for user, future in batch.members.items():
            if future.done():
                continue
            code = result.get(user)
            if code:
                future.set_exception(JoinFailed(user, code))
            else:
                future.set_result(None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
