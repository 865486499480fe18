"""Lazy joins coalesced per channel: joins due on one channel within a short
window go to Chime as one BatchCreateChannelMembership (up to 100 members)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.batching import Coalescer

AddMembers = Callable[[str, list[str]], Awaitable[dict[str, str | None]]]
MAX_BATCH = 100


class JoinFailed(Exception):
    """Chime refused this one member (its error code is in `code`)."""

    def __init__(self, member_arn: str, code: str) -> None:
        super().__init__(f"{member_arn}: {code}")
        self.code = code


class JoinBatcher:
    def __init__(self, add_members: AddMembers, *, window_seconds: float) -> None:
        self._add_members = add_members
        self._coalescer: Coalescer[str, str, None] = Coalescer(
            self._add, window=window_seconds, max_batch=MAX_BATCH, one_in_flight=False
        )

    @property
    def calls(self) -> int:
        return self._coalescer.calls

    async def join(self, channel_arn: str, member_arn: str) -> None:
        """Return once the AppInstanceUser is a member of the channel; raise
        `JoinFailed` or the gateway's error otherwise."""
        await self._coalescer.submit(channel_arn, member_arn)

    async def _add(self, channel_arn: str, members: list[str]) -> dict[str, BaseException | None]:
        result = await self._add_members(channel_arn, members)
        return {m: JoinFailed(m, code) if (code := result.get(m)) else None for m in members}

    async def close(self) -> None:
        await self._coalescer.close()
