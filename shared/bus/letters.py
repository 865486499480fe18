"""RabbitMQ messages Belfry copies: a failed delivery re-published to a delay
queue or to the dead-letter queue, with its attempt count and error in
headers, and what a dead letter says when it is read back."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from shared.bus.base import DeadLetter
from shared.tracing import TRACE_HEADERS

ATTEMPT = "x-belfry-attempt"
REASON = "x-belfry-dead-letter-reason"
ERROR = "x-belfry-error"
SOURCE_QUEUE = "x-belfry-queue"
REPLAY = "x-belfry-replay"  # the replay run that moved a letter back (replay_dead_letters)


def attempt_of(headers: Mapping[str, Any]) -> int:
    """Which attempt a delivery is (1 for the first)."""
    return _int_header(headers, ATTEMPT, 1)


def _int_header(headers: Mapping[str, Any], name: str, default: int) -> int:
    value = headers.get(name, default)
    try:
        return int(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        return default


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def copy_message(
    message: AbstractIncomingMessage,
    headers: Mapping[str, Any],
    *,
    expiration: float | None = None,
    drop: Sequence[str] = ("x-death",),
) -> aio_pika.Message:
    kept = {k: v for k, v in message.headers.items() if k not in drop}
    return aio_pika.Message(
        body=message.body,
        headers={**kept, **headers},
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        timestamp=message.timestamp,
        app_id=message.app_id,
        expiration=expiration,
    )


def read_dead_letter(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers
    reason = headers.get(REASON)
    error = headers.get(ERROR, "")
    deaths = headers.get("x-death")
    if reason is None and isinstance(deaths, list) and deaths:
        # Dead-lettered by the broker itself (delivery limit, rejection).
        first = deaths[0]
        reason = first.get("reason", "broker") if isinstance(first, Mapping) else "broker"
        error = error or f"dead-lettered by the broker ({_text(reason)})"
    return DeadLetter(
        queue=queue,
        body=message.body,
        reason=_text(reason or "unknown"),
        error=_text(error),
        attempts=_int_header(headers, ATTEMPT, 1),
        event_id=message.message_id,
        headers={h: _text(headers[h]) for h in TRACE_HEADERS if h in headers},
    )


async def peek_dead_letters(channel: AbstractChannel, queue: str, limit: int) -> list[DeadLetter]:
    """Look at (without removing) up to `limit` letters of `<queue>.dlq`."""
    dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
    held: list[AbstractIncomingMessage] = []
    try:
        while len(held) < limit:
            message = await dlq.get(no_ack=False, fail=False, timeout=5)
            if message is None:
                break
            held.append(message)
        return [read_dead_letter(queue, m) for m in held]
    finally:
        for message in held:
            await message.nack(requeue=True)


async def replay_dead_letters(
    channel: AbstractChannel,
    queue: str,
    limit: int,
    publish: Callable[[aio_pika.Message], Awaitable[None]],
) -> int:
    """Move letters of `<queue>.dlq` back to `<queue>` as first attempts; only
    what is there now, so a letter that fails again does not loop: each copy
    carries this run's id, and the run stops at a letter that has it. (The
    queue's declared message count is no bound: a quorum queue reports it late,
    e.g. 0 just after letters were requeued by a peek.)"""
    dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
    run = uuid.uuid4().hex
    replayed = 0
    while replayed < limit:
        message = await dlq.get(no_ack=False, fail=False, timeout=5)
        if message is None:
            break
        if _text(message.headers.get(REPLAY, "")) == run:
            await message.nack(requeue=True)
            break
        await publish(
            copy_message(
                message, {ATTEMPT: 1, REPLAY: run}, drop=(REASON, ERROR, SOURCE_QUEUE, "x-death")
            )
        )
        await message.ack()
        replayed += 1
    return replayed
