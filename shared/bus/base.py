"""The event bus interface and the consumer edge both transports share.

A handler is `async (Envelope) -> None` that raises on failure. The edge
(`Dispatcher`) decodes the delivery, binds the log context, runs the handler,
records metrics and says what the transport must do next: ack, retry after a
delay, or dead-letter with a reason. The transports only carry that out.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shared import metrics, tracing
from shared.events import Envelope, UndecodableEvent, decode
from shared.logging import get_logger, log_context

log = get_logger("belfry.bus")

Handler = Callable[[Envelope], Awaitable[None]]


class BusError(Exception):
    """Base of the bus's own errors."""


class PublishFailed(BusError):
    """The broker did not confirm the event (nack, timeout, connection lost)."""


class UnroutableEvent(PublishFailed):
    """No queue is bound for the event's routing key: the broker returned it."""


class RejectEvent(Exception):
    """Raised by a handler for an event that can never succeed: dead-letter it now."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Subscription:
    """One consumer: a named queue, the routing keys bound to it and its handlers.

    `handlers` maps event types to their handler: the dispatcher routes on the
    type and dead-letters a type the queue has no handler for
    (`unexpected_event`). `handler` instead takes every event (probes, tools).
    `fanout=True` makes a per-replica push queue (`<queue>.<instance>`,
    non-durable, expiring when unused): every replica gets every event; a
    failure there is logged and dropped, since the durable queues keep the
    record.
    """

    queue: str
    routing_keys: tuple[str, ...]
    handler: Handler | None = None
    fanout: bool = False
    handlers: Mapping[str, Handler] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.handler is None) == (not self.handlers):
            raise ValueError(f"{self.queue}: give either one handler or handlers by type")

    def handler_for(self, event_type: str) -> Handler | None:
        return self.handler or self.handlers.get(event_type)


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    body: bytes
    reason: str
    error: str
    attempts: int
    event_id: str | None = None
    # its trace context (`traceparent`, `tracestate`), when tracing was on
    headers: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    action: Literal["ack", "retry", "dead_letter"]
    attempt: int
    reason: str = ""
    error: str = ""
    delay_seconds: float = 0.0
    event_type: str = "unknown"
    event_id: str | None = None


@dataclass
class BusHealth:
    ok: bool
    transport: str
    detail: dict[str, object] = field(default_factory=dict)


class Dispatcher:
    """Runs one delivery through its handler and decides what happens next."""

    def __init__(
        self, service: str, retry_delays: Sequence[float], *, transport: str = "memory"
    ) -> None:
        self.service = service
        self.retry_delays = tuple(retry_delays)
        self.transport = transport

    async def dispatch(
        self,
        sub: Subscription,
        body: bytes,
        attempt: int,
        *,
        redelivered: bool = False,
        headers: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """`headers`: the message's, whose `traceparent` the handler's span continues."""
        try:
            envelope = decode(body)
        except UndecodableEvent as exc:
            log.warning("event.undecodable", queue=sub.queue, reason=exc.reason, error=exc.detail)
            return self._count(
                sub, Outcome("dead_letter", attempt, exc.reason, exc.detail, event_type="unknown")
            )
        with (
            tracing.consuming(
                headers,
                envelope,
                transport=self.transport,
                service=self.service,
                queue=sub.queue,
                attempt=attempt,
            ) as span,
            log_context(
                correlation_id=envelope.correlation_id,
                event_id=envelope.event_id,
                event_type=envelope.type,
            ),
        ):
            started = time.perf_counter()
            try:
                handler = sub.handler_for(envelope.type)
                if handler is None:
                    raise RejectEvent("unexpected_event", f"{envelope.type} on {sub.queue}")
                await handler(envelope)
            except RejectEvent as exc:
                log.warning("event.rejected", queue=sub.queue, reason=exc.reason, error=str(exc))
                outcome = Outcome(
                    "dead_letter",
                    attempt,
                    exc.reason,
                    str(exc),
                    0,
                    envelope.type,
                    envelope.event_id,
                )
            except Exception as exc:
                outcome = self._failed(sub, envelope, attempt, exc)
            else:
                if redelivered:
                    log.info("event.redelivered", queue=sub.queue)
                outcome = Outcome(
                    "ack", attempt, event_type=envelope.type, event_id=envelope.event_id
                )
            finally:
                metrics.HANDLER_SECONDS.labels(self.service, sub.queue, envelope.type).observe(
                    time.perf_counter() - started
                )
            tracing.settle(span, outcome.action, outcome.reason, outcome.error)
        return self._count(sub, outcome)

    def _failed(self, sub: Subscription, env: Envelope, attempt: int, exc: Exception) -> Outcome:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if sub.fanout:
            log.warning("event.fanout_failed", queue=sub.queue, error=error, exc_info=exc)
            return Outcome("ack", attempt, "fanout_dropped", error, 0, env.type, env.event_id)
        if attempt <= len(self.retry_delays):
            delay = self.retry_delays[attempt - 1]
            log.warning(
                "event.retry",
                queue=sub.queue,
                attempt=attempt,
                delay_s=delay,
                error=error,
                exc_info=exc,
            )
            return Outcome("retry", attempt, "handler_failed", error, delay, env.type, env.event_id)
        log.error(
            "event.dead_lettered", queue=sub.queue, attempts=attempt, error=error, exc_info=exc
        )
        return Outcome("dead_letter", attempt, "handler_failed", error, 0, env.type, env.event_id)

    def _count(self, sub: Subscription, outcome: Outcome) -> Outcome:
        labels = (self.service, sub.queue, outcome.event_type)
        if outcome.action == "retry":
            metrics.EVENTS_RETRIED.labels(*labels).inc()
        elif outcome.action == "dead_letter":
            metrics.EVENTS_DEAD_LETTERED.labels(*labels, outcome.reason).inc()
        kind = {"ack": "ok", "retry": "retried", "dead_letter": "dead_lettered"}[outcome.action]
        metrics.EVENTS_CONSUMED.labels(*labels, kind).inc()
        return outcome


class Inflight:
    """Counts handlers in progress so that `stop` can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class EventBus(abc.ABC):
    """What services see of messaging. Subscribe before `start`; `stop` drains."""

    transport: str

    def __init__(self, service: str) -> None:
        self.service = service
        self._subscriptions: list[Subscription] = []

    def subscribe(self, subscription: Subscription) -> None:
        if any(s.queue == subscription.queue for s in self._subscriptions):
            raise ValueError(f"queue {subscription.queue} already has a handler")
        self._subscriptions.append(subscription)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect, declare the topology of every subscription, start consuming."""

    @abc.abstractmethod
    async def declare(self, queues: Mapping[str, Sequence[str]]) -> None:
        """Declare durable queues and bindings without consuming (so no event is
        unroutable because its consumer has not started yet)."""

    @abc.abstractmethod
    async def publish(self, envelope: Envelope) -> None:
        """Publish and wait for the broker's confirm; raise `PublishFailed` otherwise."""

    async def publish_transient(self, envelope: Envelope, *, ttl_seconds: float = 10.0) -> None:
        """Publish an ephemeral event (the notifier's UserTyping): not persistent,
        not mandatory, dropped by the broker after `ttl_seconds` in a queue, one
        try; raise `PublishFailed` if it did not go. Never for state changes
        (those go through an outbox and `publish`)."""
        await self.publish(envelope)

    @abc.abstractmethod
    async def stop_consuming(self, drain_timeout: float = 10.0) -> None:
        """Cancel consumers and let in-flight handlers finish (bounded); publishing
        still works, so shutdown hooks can flush an outbox."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect."""

    async def stop(self, drain_timeout: float = 10.0) -> None:
        await self.stop_consuming(drain_timeout)
        await self.close()

    @abc.abstractmethod
    def health(self) -> BusHealth:
        """Connected, and every consumer attached."""

    @abc.abstractmethod
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Look at (without removing) what is in `<queue>.dlq`."""

    @abc.abstractmethod
    async def replay_dead_letters(self, queue: str, limit: int = 1000) -> int:
        """Move dead letters back to their work queue as first attempts."""

    async def __aenter__(self) -> EventBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic semantics: `*` is exactly one word, `#` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        head, rest = p[0], p[1:]
        if head == "#":
            return any(match(rest, k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (head in ("*", k[0])) and match(rest, k[1:])

    return match(pattern.split("."), routing_key.split("."))
