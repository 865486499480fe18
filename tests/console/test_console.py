"""The console in a real browser, through `make run`, signed in with the local
Cognito pool's users: scheduling, the live landing page, chat with an
attachment and a mention, what a customer never sees, and failed sign-ins.
Each page's screenshot goes to docs/console/ (docs/console.md shows them)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, FilePayload, Page, expect

from tests.console.conftest import PASSWORD, SHOTS
from tests.platform_run.conftest import RunningPlatform

WAIT_MS = 20_000


OpenPage = Callable[[], Awaitable[Page]]


@pytest.fixture
async def open_page(chromium: Browser) -> AsyncIterator[OpenPage]:
    """A page per person, each in its own browser context; all closed afterwards."""
    contexts: list[BrowserContext] = []

    async def opened() -> Page:
        context = await chromium.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)
        return await context.new_page()

    yield opened
    for context in contexts:
        await context.close()


async def sign_in(
    page: Page, console: RunningPlatform, user: str, password: str = PASSWORD
) -> None:
    await page.goto(f"{console.url}/")
    await page.get_by_label("Username").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=WAIT_MS)


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


def room_item(page: Page, title: str) -> Any:
    return page.get_by_role("listitem").filter(has_text=title)


async def test_an_admin_schedules_a_room_that_appears_live_and_fills(
    console: RunningPlatform, open_page: OpenPage, http: httpx.AsyncClient
) -> None:
    admin, carl, mia = [await open_page() for _ in range(3)]
    await sign_in(carl, console, "carl")
    await sign_in(mia, console, "mia")
    for viewer in (carl, mia):
        await viewer.get_by_role("link", name="Rooms").click()
        await expect(viewer.get_by_role("heading", name="Active rooms")).to_be_visible()

    await sign_in(admin, console, "alice")
    await expect(carl.get_by_role("link", name="Schedule")).to_have_count(0)  # admins only
    await admin.get_by_role("link", name="Schedule").click()
    title = f"Geometry {int(time.time())}"
    await admin.get_by_label("Title").fill(title)
    starts = datetime.fromtimestamp(time.time() + 3).strftime("%Y-%m-%dT%H:%M:%S")
    await admin.get_by_label("Starts").fill(starts)
    await admin.get_by_label("Duration (minutes)").fill("30")
    await admin.get_by_label("Topic").fill("triangles")
    await admin.get_by_label("Media region").select_option("eu-central-1")
    await admin.get_by_role("button", name="Schedule").click()
    await expect(admin.get_by_text(title).first).to_be_visible(timeout=WAIT_MS)
    await shot(admin, "schedule")

    # both landing pages show it once it activates, without a reload
    for viewer in (carl, mia):
        await expect(room_item(viewer, title)).to_be_visible(timeout=WAIT_MS)
        await expect(room_item(viewer, title)).to_contain_text("0 attendees")

    # carl joins; his browser's Chime SDK would connect: the emulator plays it
    await room_item(carl, title).get_by_role("button", name="Join").click()
    ids = carl.locator("dl.ids code")
    await expect(ids.first).not_to_be_empty(timeout=WAIT_MS)
    meeting_id, attendee_id = await ids.nth(0).inner_text(), await ids.nth(1).inner_text()
    connected = await http.post(
        f"{console.chime_url}/_emulator/meetings/{meeting_id}/attendees/{attendee_id}/connect"
    )
    assert connected.status_code == 200, connected.text
    await expect(room_item(mia, title)).to_contain_text("1 attendee", timeout=WAIT_MS)
    await shot(mia, "rooms")
    await mia.set_viewport_size({"width": 390, "height": 844})  # a phone
    await expect(room_item(mia, title).get_by_role("button", name="Join")).to_be_in_viewport()
    await shot(mia, "rooms-phone")


async def test_a_wrong_password_is_an_error_and_a_bad_token_is_the_sign_in_page(
    console: RunningPlatform, open_page: OpenPage, http: httpx.AsyncClient
) -> None:
    page = await open_page()
    await page.goto(f"{console.url}/")
    await page.get_by_label("Username").fill("carl")
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    await shot(page, "signin")

    # a forged token (the payload changed, the signature not) is refused: 401
    await sign_in(page, console, "carl")
    token = await page.evaluate(
        "() => Object.values(sessionStorage).find((v) => v.split('.').length === 3)"
    )
    assert isinstance(token, str)
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["cognito:groups"] = ["admin"]
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    forged = f"{head}.{forged_body}.{signature}"
    refused = await http.get(f"{console.url}/rooms", headers={"authorization": f"Bearer {forged}"})
    assert refused.status_code == 401
    await page.evaluate(
        "(forged) => { for (const k of Object.keys(sessionStorage))"
        " if (sessionStorage.getItem(k).split('.').length === 3)"
        " sessionStorage.setItem(k, forged) }",
        forged,
    )
    await page.reload()  # the console's first API call is refused: back to sign-in
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_role("button", name="Sign out")).to_be_hidden()


async def token_of(page: Page) -> str:
    token = await page.evaluate(
        "() => Object.values(sessionStorage).find((v) => v.split('.').length === 3)"
    )
    assert isinstance(token, str)
    return token


async def test_a_customer_writes_with_an_attachment_and_a_mention_that_arrives_live(
    console: RunningPlatform, open_page: OpenPage, http: httpx.AsyncClient
) -> None:
    carl, mia = await open_page(), await open_page()
    await sign_in(mia, console, "mia")
    await mia.get_by_role("link", name="Chat").click()
    await expect(mia.get_by_role("heading", name="Customers")).to_be_visible(timeout=WAIT_MS)
    await expect(mia.get_by_role("link", name="Managers only").first).to_be_visible(timeout=WAIT_MS)

    await sign_in(carl, console, "carl")
    await carl.get_by_role("link", name="Chat").click()
    composer = carl.get_by_label("Message", exact=True)
    await expect(composer).to_be_visible(timeout=WAIT_MS)
    # a customer sees their one conversation, never a managers-only channel
    await expect(carl.get_by_role("link", name="Managers only")).to_have_count(0)
    listed = await http.get(
        f"{console.url}/chat/channels", headers={"authorization": f"Bearer {await token_of(carl)}"}
    )
    channels = listed.json()["channels"]
    assert [c["kind"] for c in channels] == ["customer"]

    note = f"see the notes {int(time.time())}"
    notes: FilePayload = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"page 12"}
    await carl.get_by_label("Attach files").set_input_files(files=[notes])
    await composer.fill(f"@mia {note}")
    await carl.get_by_role("button", name="Send").click()
    await expect(carl.get_by_text(note)).to_be_visible(timeout=WAIT_MS)
    await expect(carl.get_by_role("link", name="notes.txt")).to_be_visible(timeout=WAIT_MS)
    await shot(carl, "chat-customer")

    # mia's page, not reloaded: the mention is counted, the message is there
    await expect(mia.get_by_text("unread mention").first).to_be_attached(timeout=WAIT_MS)
    await mia.get_by_role("listitem").filter(has_text="carl").get_by_role("link").first.click()
    await expect(mia.get_by_text(note)).to_be_visible(timeout=WAIT_MS)
    await expect(mia.get_by_role("link", name="notes.txt")).to_be_visible()
    await shot(mia, "chat-manager")
