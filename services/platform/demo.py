"""`python -m services.platform.demo` (`make demo`): both stories against a running platform.

Rooms: an admin schedules a room a few seconds ahead; once it is active three
people join one Chime meeting; their browsers connect to it and the landing
page counts them (Chime's meeting events); the meeting is ended the way Chime
ends an idle one (both through the Chime SDK emulator's control API) and the next
join gets a re-created meeting.

Chat: a customer is assigned a manager; the customer sends the manager a
message with an attachment and a mention; the manager mentions a second manager
in the managers-only channel about that customer; the second manager is joined
to the channel lazily; the notifications arrive over the WebSocket.

Where: `BELFRY_URL` (default: `BELFRY_HOST`/`BELFRY_PORT`, http://127.0.0.1:8080);
tokens: the platform's `GET /auth/config` names its Cognito user pool (`make
run`'s, in its moto server), whose users the demo makes and signs in as `make
token` does; in local mode they are minted with the local signing key from the
same settings as `make token LOCAL=1`. The Chime SDK emulator is the one the
platform names at `GET /platform/info` (or `--chime-url`): when there is none, or
it does not answer, the step that needs it fails. Exit code 0 only when every step
did what it says; `--no-emulator` skips the two emulator steps and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from emulators.chime.control import EmulatorControl
from services.platform.demo_client import (
    Emulator,
    Feed,
    Gateway,
    eventually,
    find_emulator,
    items_of,
    reachable,
    user_pool_of,
)
from services.platform.embedded import url_of
from services.platform.settings import PlatformSettings
from services.platform.timeline import DemoFailed, Timeline
from shared.settings_errors import load_settings

STEPS = 21


async def _connect_and_count(
    gw: Gateway, *, viewer: str, chime_url: str, room_id: str, meeting_id: str, attendees: list[str]
) -> int:
    """Connect each attendee as the Chime JS SDK would; the room's count once it has them all."""
    async with EmulatorControl(chime_url) as control:
        for attendee_id in attendees:
            await control.connect(meeting_id, attendee_id)

    async def counted() -> int | None:
        room = await gw.json(viewer, "GET", f"/rooms/{room_id}")
        count = room.get("attendee_count")
        return count if count == len(attendees) else None

    found: int = await eventually(counted, timeout=15, what=f"{len(attendees)} connected")
    return found


async def rooms_story(  # noqa: PLR0915 - one story, read top to bottom
    gw: Gateway, timeline: Timeline, chime: Emulator | None, lead_seconds: float
) -> None:
    """`chime` None: `--no-emulator`, the two steps that need it are skipped."""
    timeline.section("Scheduled meeting rooms")
    admin = await gw.person("ada", "admin")
    attendees = [await gw.person(name, "customer") for name in ("ann", "bob", "cy")]
    latecomer = await gw.person("dee", "customer")

    with timeline.step(f"ada (admin) schedules a room {lead_seconds:g} s ahead") as step:
        start_at = int(time.time() + lead_seconds)
        room = await gw.json(
            admin,
            "POST",
            "/schedule",
            expect=(201,),
            json={
                "title": f"Demo room {gw.run}",
                "topic": "Belfry demo",
                "start_at": start_at,
                "duration_minutes": 5,
                "media_region": "eu-central-1",
            },
        )
        room_id = room["room_id"]
        step.done(f"room {room_id}, starts at {time.strftime('%H:%M:%S', time.gmtime(start_at))}")

    with timeline.step("the room becomes active and is listed on the landing page") as step:
        scheduled = time.monotonic()

        async def listed() -> dict[str, Any] | None:
            rooms = items_of(await gw.json(attendees[0], "GET", "/rooms"), "rooms")
            mine = next((r for r in rooms if r.get("room_id") == room_id), None)
            return mine if mine and mine.get("status", "active") == "active" else None

        await eventually(listed, timeout=lead_seconds + 30, what="the room on GET /rooms")
        step.done(f"after {time.monotonic() - scheduled:.1f} s")

    meeting_id = ""
    attendee_ids: list[str] = []
    for number, who in enumerate(attendees, 1):
        with timeline.step(f"{gw.name(who)} joins the room") as step:
            joined = await gw.json(who, "POST", f"/rooms/{room_id}/join")
            this_meeting = joined["Meeting"]["MeetingId"]
            if number == 1:
                meeting_id = this_meeting
            elif this_meeting != meeting_id:
                raise DemoFailed(f"a second meeting {this_meeting} besides {meeting_id}")
            attendee_ids.append(joined["Attendee"]["AttendeeId"])
            step.done(f"meeting {meeting_id[:8]}…, attendee {attendee_ids[-1][:8]}…")

    with timeline.step("their browsers connect; the landing page counts three") as step:
        if chime is None:
            step.skip("--no-emulator")
        else:
            chime_url = await reachable(chime)
            found = await _connect_and_count(
                gw,
                viewer=admin,
                chime_url=chime_url,
                room_id=room_id,
                meeting_id=meeting_id,
                attendees=attendee_ids,
            )
            step.done(f"attendee_count {found}")

    ended = False
    with timeline.step("Chime ends the meeting (the emulator, as after 5 idle minutes)") as step:
        if chime is None:
            step.skip("--no-emulator")
        else:
            chime_url = await reachable(chime)
            async with EmulatorControl(chime_url) as control:
                live = {m["MeetingId"] for m in await control.live_meetings()}
                if meeting_id not in live:
                    raise DemoFailed(
                        f"meeting {meeting_id} is not live on the emulator at {chime_url}: "
                        "the platform uses another Chime SDK endpoint"
                    )
                await control.end_meeting(meeting_id)
                if meeting_id in {m["MeetingId"] for m in await control.live_meetings()}:
                    raise DemoFailed(f"meeting {meeting_id} is still live after ending it")
                ended = True
                step.done("ended; the emulator no longer lists it")

    dee_sees = "the room gets a new meeting" if chime is not None else "the room keeps its meeting"
    with timeline.step(f"dee joins: {dee_sees}") as step:
        joined = await gw.json(latecomer, "POST", f"/rooms/{room_id}/join")
        new_meeting = joined["Meeting"]["MeetingId"]
        if ended and new_meeting == meeting_id:
            raise DemoFailed(f"the ended meeting {meeting_id} was handed out again")
        if not ended and new_meeting != meeting_id:
            raise DemoFailed(f"a second meeting {new_meeting} while {meeting_id} is live")
        step.done(f"meeting {new_meeting[:8]}…" + (" (re-created)" if ended else " (the same)"))


async def chat_story(gw: Gateway, timeline: Timeline, base_url: str) -> None:  # noqa: PLR0915
    timeline.section("Customer/manager chat")
    admin = await gw.person("ada", "admin")
    customer = await gw.person("carl", "customer")
    manager = await gw.person("mia", "manager")
    colleague = await gw.person("max", "manager")
    feeds = {who: Feed(who) for who in (manager, colleague)}
    try:
        with timeline.step("mia and max (managers) open their notification WebSockets") as step:
            for who, feed in feeds.items():
                await feed.open(base_url, gw.tokens[who])
            step.done("connected")

        with timeline.step("carl, mia and max sign in to chat") as step:
            for who in (customer, manager, colleague):
                await gw.call(who, "GET", "/chat/channels")
            step.done("3 people")

        with timeline.step("ada (admin) assigns carl to mia") as step:
            await gw.call(
                admin,
                "PUT",
                f"/chat/customers/{quote(customer)}/manager",
                json={"manager_id": manager},
                expect=(200, 201, 204),
            )
            step.done("assigned")

        with timeline.step("carl sees exactly his own channel") as step:
            channels = items_of(await gw.json(customer, "GET", "/chat/channels"), "channels")
            if len(channels) != 1:
                raise DemoFailed(f"carl sees {len(channels)} channels: {channels}")
            channel_id = channels[0]["channel_id"]
            step.done(channel_id)

        with timeline.step("carl uploads an attachment (multipart)") as step:
            body = b"Agenda: 1. welcome 2. questions\n"
            uploaded = await gw.json(
                customer,
                "POST",
                "/chat/attachments",
                expect=(201,),
                files={"file": ("agenda.txt", body, "text/plain")},
            )
            attachment_id = uploaded["attachment_id"]
            step.done(f"attachment {attachment_id}, {len(body)} bytes")

        with timeline.step("carl writes to mia with the attachment and a mention") as step:
            message = await gw.json(
                customer,
                "POST",
                f"/chat/channels/{quote(channel_id)}/messages",
                expect=(201,),
                json={
                    "content": f"Hello @{gw.name(manager)}, the agenda for our call is attached.",
                    "mentions": [manager],
                    "attachment_ids": [attachment_id],
                },
            )
            message_id = message["message_id"]
            step.done(f"message {message_id}")

        with timeline.step("mia's WebSocket: the message and the mention") as step:
            feed = feeds[manager]
            await feed.wait_for("message.posted", lambda d: d.get("message_id") == message_id)
            await feed.wait_for("user.mentioned", lambda d: d.get("message_id") == message_id)
            step.done("message.posted, user.mentioned")

        with timeline.step("mia downloads the attachment (presigned URL)") as step:
            redirect = await gw.call(
                manager, "GET", f"/chat/attachments/{attachment_id}", expect=(302, 307)
            )
            async with httpx.AsyncClient(timeout=10) as plain:
                fetched = await plain.get(redirect.headers["location"])
            if fetched.status_code != 200 or fetched.content != body:
                raise DemoFailed(f"the download answered {fetched.status_code}")
            step.done(f"{len(fetched.content)} bytes, as uploaded")

        with timeline.step("mia mentions max in the managers-only channel about carl") as step:
            channels = items_of(await gw.json(manager, "GET", "/chat/channels"), "channels")
            managers_channel = next(
                (
                    c
                    for c in channels
                    if c.get("kind") == "managers" and c.get("customer_id") == customer
                ),
                None,
            )
            if managers_channel is None:
                raise DemoFailed(f"no managers-only channel about {customer} in {channels}")
            managers_id = managers_channel["channel_id"]
            note = await gw.json(
                manager,
                "POST",
                f"/chat/channels/{quote(managers_id)}/messages",
                expect=(201,),
                json={
                    "content": f"@{gw.name(colleague)} can you take carl's call?",
                    "mentions": [colleague],
                },
            )
            note_id = note["message_id"]
            step.done(f"message {note_id} in {managers_id}")

        with timeline.step("max is joined lazily; his WebSocket gets the mention") as step:
            feed = feeds[colleague]
            await feed.wait_for("user.mentioned", lambda d: d.get("message_id") == note_id)
            await feed.wait_for("channel.joined", lambda d: d.get("user_id") == colleague)
            step.done("user.mentioned, channel.joined")

        with timeline.step("max is now a member of the managers-only channel") as step:

            async def member() -> bool | None:
                listed = items_of(await gw.json(colleague, "GET", "/chat/channels"), "channels")
                mine = next((c for c in listed if c.get("channel_id") == managers_id), {})
                return True if mine.get("is_member") else None

            await eventually(member, timeout=15, what="max's membership")
            step.done("is_member: true")

        with timeline.step("max's mention inbox") as step:
            inbox = await gw.json(colleague, "GET", "/notifications/mentions?unread=true")
            mentions = items_of(inbox, "mentions")
            if not any(m.get("message_id") == note_id for m in mentions):
                raise DemoFailed(f"the mention is not in max's inbox: {inbox}")
            step.done(f"unread_count {inbox.get('unread_count', len(mentions))}")
    finally:
        for feed in feeds.values():
            await feed.close()


async def play(
    timeline: Timeline,
    base_url: str,
    chime_url: str | None,
    settings: PlatformSettings,
    *,
    ready_timeout: float = 30.0,
    lead_seconds: float = 3.0,
    use_emulator: bool = True,
) -> None:
    run = uuid.uuid4().hex[:6]
    print(f"Belfry demo against {base_url} (run {run})", flush=True)
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        with timeline.step("the platform is ready") as step:

            async def ready() -> dict[str, Any] | None:
                try:
                    response = await http.get("/readyz")
                except httpx.TransportError:
                    return None
                return response.json() if response.status_code == 200 else None

            try:
                status = await eventually(ready, timeout=ready_timeout, what="GET /readyz 200")
            except DemoFailed:
                raise DemoFailed(
                    f"no ready platform at {base_url}: start it with `make run`"
                ) from None
            services = sorted({name.split(".")[0] for name in status.get("checks", {})})
            pool = await user_pool_of(http)
            signs_in = f"user pool {pool.user_pool_id}" if pool else "local tokens"
            chime = await find_emulator(http, chime_url) if use_emulator else None
            drives = f"Chime SDK emulator {chime.url}" if chime and chime.url else "no emulator"
            step.done(f"{', '.join(services)}; {signs_in}; {drives}")
        gw = Gateway(http, settings, run, pool)
        await rooms_story(gw, timeline, chime, lead_seconds=lead_seconds)
        await chat_story(gw, timeline, base_url)


def main(argv: Sequence[str] | None = None) -> int:
    settings = load_settings(PlatformSettings)
    default_url = os.environ.get("BELFRY_URL") or url_of(settings.host, settings.port)
    parser = argparse.ArgumentParser(prog="python -m services.platform.demo", description=__doc__)
    parser.add_argument("--url", default=default_url, help=f"the gateway (default {default_url})")
    parser.add_argument(
        "--chime-url",
        default=None,
        help="the Chime SDK emulator's URL (default: the one GET /platform/info names)",
    )
    parser.add_argument(
        "--no-emulator",
        action="store_true",
        help="skip the two steps that need the emulator's control API (real Chime)",
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=30.0, help="how long to wait for /readyz"
    )
    parser.add_argument(
        "--lead-seconds", type=float, default=3.0, help="how far ahead the room is scheduled"
    )
    args = parser.parse_args(argv)
    timeline = Timeline(STEPS)

    async def go() -> None:
        await play(
            timeline,
            args.url.rstrip("/"),
            args.chime_url,
            settings,
            ready_timeout=args.ready_timeout,
            lead_seconds=args.lead_seconds,
            use_emulator=not args.no_emulator,
        )

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        print("\nDemo interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        where = f" at {timeline.failed_step}" if timeline.failed_step else ""
        reason = str(exc) if isinstance(exc, DemoFailed) else f"{type(exc).__name__}: {exc}"
        print(f"\nDemo FAILED{where} after {timeline.elapsed():.1f} s: {reason}", file=sys.stderr)
        return 1
    if timeline.number != STEPS:
        print(f"\nDemo FAILED: {timeline.number} of {STEPS} steps ran", file=sys.stderr)
        return 1
    skipped = f", {timeline.skipped} steps skipped (--no-emulator)" if timeline.skipped else ""
    print(f"\nBoth stories played out in {timeline.elapsed():.1f} s{skipped}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
