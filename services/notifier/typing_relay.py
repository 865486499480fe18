"""Typing indicators: `{"type": "typing", "channel_id": …}` from a client, a
`typing` frame `{"channel_id", "user_id"}` to the sessions of the channel's
other members on every replica. Ephemeral: never in a feed, no cursor, never
replayed; a lost one is not missed (the next keystroke sends another).

The socket's replica decides (`TypingRelay.typed`, never blocking the socket):
per user and channel at most one relay per `interval_seconds`, per user at
most `burst` relays (over every channel) per interval, everything beyond
dropped silently; then role first (chat's channel ids say the kind:
`managers-…` only for a token with `manager`; `customer-<id>` for staff, and
for a customer only their own), then membership (the replica's cached view,
`Members.members`: no DynamoDB write, at most one Query per channel and cache
period). Refused frames are ignored, never answered or closed for. A relayed
one is a `UserTyping` event naming the recipients (the channel's members but
the typist), published non-persistent to the events exchange
(`notifier.user_typing`, bound only to the per-replica fan-out queues): one try,
no outbox, no retry, expiring in the queue. Each replica's fan-out consumer
(`on_user_typing`) pushes the frame to its sessions of the recipients whose
token may see the channel (the same role check), coalesced per typist and
channel. The handler never fails, so nothing is retried or dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from shared.auth import ADMIN, CUSTOMER, MANAGER, Principal
from shared.events import Envelope, Producer, UserTyping
from shared.logging import get_logger
from shared.metrics import Counter

from .domain import Audience
from .ports import MemberLists, Recipients

log = get_logger("belfry.notifier")

TYPING_FRAME = "typing"
CHANNEL_ID_MAX = 128
announce = Producer("notifier")

TYPING = Counter(
    "belfry_notifier_typing_total",
    "Typing frames from clients, by what became of them.",
    ["outcome"],  # relayed | rate_limited | refused | busy | failed
)

Publish = Callable[[Envelope], Awaitable[None]]


def typing_request(text: str | None) -> str | None:
    """The channel id of a client frame `{"type": "typing", "channel_id": …}`."""
    try:
        frame = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("type") != "typing":
        return None
    channel_id = frame.get("channel_id")
    if not isinstance(channel_id, str) or not 0 < len(channel_id) <= CHANNEL_ID_MAX:
        return None
    return channel_id if channel_id.isprintable() else None


def channel_audience(channel_id: str) -> Audience | None:
    """Who may read a channel, from chat's channel ids (docs/chat.md, "Channels"):
    `customer-<customer id>` / `managers-<customer id>`, or `…-h.<sha256>` when
    the id was not usable as is (then the customer is not known from it)."""
    for kind in ("customer", "managers"):
        prefix = f"{kind}-"
        if channel_id.startswith(prefix) and len(channel_id) > len(prefix):
            rest = channel_id[len(prefix) :]
            return Audience(kind, None if rest.startswith("h.") else rest)
    return None


def may_type(principal: Principal, audience: Audience) -> bool:
    """Role first (membership is checked apart): the managers channel only with
    `manager`; a customer channel for staff, and for a customer their own (a
    customer is only ever a member of their own, so a hashed id relies on it)."""
    if audience.channel_kind == "managers":
        return principal.has_any(MANAGER)
    if audience.channel_kind != "customer":
        return False
    if principal.has_any(MANAGER, ADMIN):
        return True
    return principal.has_any(CUSTOMER) and audience.customer_id in (None, principal.user_id)


def frame(event: UserTyping) -> str:
    data = {"channel_id": event.channel_id, "user_id": event.user_id}
    return json.dumps({"type": TYPING_FRAME, "data": data})


class TypingRelay:
    def __init__(
        self,
        *,
        members: MemberLists,
        publish: Publish,
        sessions: Recipients,
        interval_seconds: float,
        burst: int = 10,
        max_inflight: int = 200,
        ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._members = members
        self._publish = publish
        self._sessions = sessions
        self._interval = interval_seconds
        self._burst = burst
        self._max_inflight = max_inflight
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}  # (user, channel) -> last relay
        self._users: dict[str, tuple[float, int]] = {}  # user -> (window start, relays)
        self._inflight: set[asyncio.Task[None]] = set()

    # --- the typist's replica -----------------------------------------------------

    def typed(self, principal: Principal, channel_id: str) -> bool:
        """A client's typing frame: True if it will be relayed (checked first)."""
        now = self._clock()
        if not self._admit(principal.user_id, channel_id, now):
            TYPING.labels("rate_limited").inc()
            return False
        if len(self._inflight) >= self._max_inflight:
            TYPING.labels("busy").inc()
            return False
        task = asyncio.create_task(self._relay(principal, channel_id))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return True

    def _admit(self, user_id: str, channel_id: str, now: float) -> bool:
        key = (user_id, channel_id)
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        start, count = self._users.get(user_id, (now, 0))
        if now - start >= self._interval:
            start, count = now, 0
        if count >= self._burst:
            return False
        self._users[user_id] = (start, count + 1)
        self._last[key] = now
        if len(self._last) > 10_000:
            self._forget(now)
        return True

    def _forget(self, now: float) -> None:
        self._last = {k: t for k, t in self._last.items() if now - t < self._interval}
        self._users = {u: w for u, w in self._users.items() if now - w[0] < self._interval}

    async def _relay(self, principal: Principal, channel_id: str) -> None:
        user_id = principal.user_id
        audience = channel_audience(channel_id)
        try:
            members = await self._members.members(channel_id) if audience else set()
            if audience is None or not may_type(principal, audience) or user_id not in members:
                TYPING.labels("refused").inc()
                log.debug("typing.refused", channel_id=channel_id, user_id=user_id)
                return
            recipients = sorted(members - {user_id})
            if recipients:
                event = UserTyping(
                    channel_id=channel_id,
                    user_id=user_id,
                    recipients=recipients,
                    channel_kind=audience.channel_kind,
                    customer_id=audience.customer_id,
                )
                await self._publish(announce(event))
            TYPING.labels("relayed").inc()
        except Exception as exc:  # ephemeral: dropped, never retried
            TYPING.labels("failed").inc()
            log.info("typing.dropped", channel_id=channel_id, error=repr(exc))

    async def close(self) -> None:
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

    # --- every replica ---------------------------------------------------------------

    def deliver(self, event: UserTyping) -> int:
        """The frame to this replica's sessions of the recipients (not the
        typist's) whose token may see the channel; how many sessions."""
        audience = Audience(event.channel_kind, event.customer_id)
        recipients = [u for u in event.recipients if u != event.user_id]
        return self._sessions.push_to(
            recipients,
            f"typing:{event.channel_id}:{event.user_id}",
            TYPING_FRAME,
            frame(event),
            lambda principal: may_type(principal, audience),
        )


async def on_user_typing(event: UserTyping, envelope: Envelope, *, typing: TypingRelay) -> None:
    """notifier.fanout.<instance>: never raises (an ephemeral frame is dropped,
    not retried or dead-lettered)."""
    try:
        typing.deliver(event)
    except Exception as exc:
        log.warning("typing.deliver_failed", channel_id=event.channel_id, error=repr(exc))
