"""Who is in a room (issue 12): Chime's meeting events -> EventBridge -> SQS ->
rooms -> `attendee_count`, beside the raw path it rides on.

Subprocesses: moto server (DynamoDB, EventBridge, SQS), the Chime emulator
publishing its meeting events to moto's default bus, and rooms (memory bus)
provisioning its rule and queue there. A second rule on the same bus feeds a
raw queue that this process long-polls with aiobotocore: the floor (emulator
publish + EventBridge + SQS) that rooms' figure stands on.

Figures:
- 200 attendees of 10 rooms connect over 5 s (the emulator's control API, as
  the Chime JS SDK would): event -> count lag p50/p99 (connect sent -> the
  room's `attendee_count` on `GET /rooms` counts it, polled every 50 ms), and
  the raw lag (connect sent -> the event received from the raw queue);
- then all 200 disconnect at once: messages handled per second by rooms
  (200 / time until every count is 0) beside the raw queue's receive rate.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from typing import Any

import httpx

from bench.processes import chime_emulator, cpu_seconds, free_port, moto, running
from bench.report import Report, percentile
from bench.rooms import _aws, activate_rooms
from emulators.chime.control import EmulatorControl
from shared.auth import mint_local_token
from shared.settings import BelfrySettings

BENCH = "presence"
ROOMS = 10
ATTENDEES = 200
CONNECT_SECONDS = 5.0
PREFIX = "presence"
POLL_SECONDS = 0.05  # how often the bench reads GET /rooms (the figures' resolution)


async def _raw_queue(sqs: Any, events: Any) -> str:
    url = (await sqs.create_queue(QueueName="presence-raw"))["QueueUrl"]
    arn = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    pattern = {"source": ["aws.chime"], "detail-type": ["Chime Meeting State Change"]}
    await events.put_rule(Name="presence-raw", EventPattern=json.dumps(pattern))
    await events.put_targets(Rule="presence-raw", Targets=[{"Id": "raw", "Arn": arn}])
    return str(url)


async def _raw_consumer(sqs: Any, url: str, seen: dict[tuple[str, str], float]) -> None:
    """Receive time of each attendee event, by (eventType, attendeeId)."""
    while True:
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        now = time.perf_counter()
        messages = got.get("Messages", [])
        for message in messages:
            detail = json.loads(message["Body"])["detail"]
            if "attendeeId" in detail:
                seen.setdefault((detail["eventType"], detail["attendeeId"]), now)
        if messages:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            await sqs.delete_message_batch(QueueUrl=url, Entries=entries)


async def _watch_counts(
    http: httpx.AsyncClient, token: str, history: dict[str, list[tuple[float, int]]]
) -> None:
    headers = {"authorization": f"Bearer {token}"}
    while True:
        rooms = (await http.get("/rooms", headers=headers)).json()["rooms"]
        now = time.perf_counter()
        for room in rooms:
            history[room["room_id"]].append((now, room["attendee_count"]))
        await asyncio.sleep(POLL_SECONDS)


def _first_at(history: list[tuple[float, int]], reached: Any, after: float) -> float | None:
    return next((t for t, count in history if t >= after and reached(count)), None)


async def run(report: Report) -> None:
    settings = BelfrySettings()
    with moto() as (moto_url, _), chime_emulator() as (chime, _):
        port = free_port()
        env = {
            "BELFRY_AMQP_URL": "memory://",
            "BELFRY_AWS_ENDPOINT_URL": moto_url,
            "BELFRY_CHIME_ENDPOINT_URL": chime,
            "BELFRY_TABLE_PREFIX": PREFIX,
            "BELFRY_PORT": str(port),
            "BELFRY_LOG_LEVEL": "WARNING",
            "BELFRY_ROOMS_MEETING_EVENTS_PROVISION": "true",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
        rooms_url = f"http://127.0.0.1:{port}"
        with running(["services.rooms"], f"{rooms_url}/readyz", env) as rooms_pid:
            async with (
                EmulatorControl(chime) as control,
                _aws("sqs", moto_url) as sqs,
                _aws("events", moto_url) as events,
                httpx.AsyncClient(base_url=rooms_url, timeout=30) as http,
            ):
                await control.set_config(events_endpoint=moto_url)
                raw_url = await _raw_queue(sqs, events)
                room_ids = await activate_rooms(moto_url, ROOMS, PREFIX)
                attendees: list[tuple[str, str, str]] = []  # room, meeting, attendee
                for n in range(ATTENDEES):
                    room_id = room_ids[n % ROOMS]
                    token = mint_local_token(settings, f"pupil-{n}", ["customer"])
                    joined = (
                        await http.post(
                            f"/rooms/{room_id}/join", headers={"authorization": f"Bearer {token}"}
                        )
                    ).json()
                    attendees.append(
                        (room_id, joined["Meeting"]["MeetingId"], joined["Attendee"]["AttendeeId"])
                    )
                seen: dict[tuple[str, str], float] = {}
                history: dict[str, list[tuple[float, int]]] = defaultdict(list)
                viewer = mint_local_token(settings, "viewer", ["customer"])
                background = [
                    asyncio.create_task(_raw_consumer(sqs, raw_url, seen)),
                    asyncio.create_task(_watch_counts(http, viewer, history)),
                ]
                try:
                    # 1. connects spread over 5 s: lag of each to its room's count
                    sent: list[tuple[str, int, str, float]] = []
                    per_room: dict[str, int] = defaultdict(int)
                    gap = CONNECT_SECONDS / ATTENDEES
                    start = time.perf_counter()
                    for n, (room_id, meeting, attendee) in enumerate(attendees):
                        await asyncio.sleep(max(0.0, start + n * gap - time.perf_counter()))
                        at = time.perf_counter()
                        await control.connect(meeting, attendee)
                        per_room[room_id] += 1
                        sent.append((room_id, per_room[room_id], attendee, at))
                    deadline = time.perf_counter() + 60
                    while time.perf_counter() < deadline and not all(
                        history[r] and history[r][-1][1] == per_room[r] for r in room_ids
                    ):
                        await asyncio.sleep(0.05)
                    lags = []
                    for room_id, k, _, at in sent:
                        reached = _first_at(history[room_id], lambda c, k=k: c >= k, at)
                        if reached is not None:
                            lags.append(reached - at)
                    raw = [
                        seen[("chime:AttendeeJoined", a)] - at
                        for _, _, a, at in sent
                        if ("chime:AttendeeJoined", a) in seen
                    ]
                    extra = {"attendees": ATTENDEES, "rooms": ROOMS, "over_s": CONNECT_SECONDS}
                    report.emit(BENCH, "counted", len(lags), "attendees", **extra)
                    for q in (50, 99):
                        report.emit(
                            BENCH,
                            f"count_lag_p{q}",
                            round(percentile(lags, q), 3),
                            "s",
                            raw_path=round(percentile(raw, q), 3),
                            **({"target": 2} if q == 99 else {}),
                            **extra,
                        )

                    # 2. everyone disconnects at once: messages handled per second
                    cpu = cpu_seconds(rooms_pid)
                    first = time.perf_counter()
                    await asyncio.gather(*(control.disconnect(m, a) for _, m, a in attendees))
                    deadline = time.perf_counter() + 60
                    while time.perf_counter() < deadline and not all(
                        history[r] and history[r][-1][1] == 0 for r in room_ids
                    ):
                        await asyncio.sleep(0.02)
                    done = max(
                        _first_at(history[r], lambda c: c == 0, first) or deadline for r in room_ids
                    )
                    raw_left = [
                        seen[("chime:AttendeeLeft", a)]
                        for _, _, a in attendees
                        if ("chime:AttendeeLeft", a) in seen
                    ]
                    raw_rate = len(raw_left) / max(1e-6, max(raw_left, default=first) - first)
                    report.emit(
                        BENCH,
                        "messages_per_second",
                        round(ATTENDEES / (done - first), 1),
                        "msg/s",
                        raw_path=round(raw_rate, 1),
                        messages=ATTENDEES,
                    )
                    report.emit(
                        BENCH,
                        "rooms_cpu_per_message",
                        round((cpu_seconds(rooms_pid) - cpu) * 1000 / ATTENDEES, 2),
                        "ms",
                    )
                finally:
                    for task in background:
                        task.cancel()
                    await asyncio.gather(*background, return_exceptions=True)


def main() -> None:  # `python -m bench.presence`
    asyncio.run(run(Report(sys.stdout)))


if __name__ == "__main__":
    main()
