"""Nothing secret in the logs: `make run` (`python -m services.platform`, its
Cognito pool in the embedded moto server) is used with tokens over HTTP and
over WebSockets (a query token, a first auth frame, a renewal frame, a refused
one), then its whole log is searched for every token used."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.platform_run.conftest import RunningPlatform, running_platform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    yield from running_platform("memory", None, tmp_path_factory)


def ws(platform: RunningPlatform, query: str = "") -> str:
    return platform.url.replace("http://", "ws://") + "/notifications/ws" + query


async def test_no_token_used_over_http_or_websockets_is_in_the_log(
    platform: RunningPlatform,
) -> None:
    admin = await platform.token("lena-logs", "admin")
    customer = await platform.token("lou-logs", "customer")
    renewal = await platform.token("lena-logs", "admin")
    forged = admin.rsplit(".", 1)[0] + ".c2lnbmF0dXJlLW9mLW5vYm9keQ"
    used = {"admin": admin, "customer": customer, "renewal": renewal, "forged": forged}
    assert len(set(used.values())) == len(used)

    async with httpx.AsyncClient(base_url=platform.url, timeout=30) as http:
        for token, path in ((admin, "/schedule"), (customer, "/notifications/mentions")):
            answer = await http.get(path, headers={"authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
        answer = await http.get("/schedule", headers={"authorization": f"Bearer {forged}"})
        assert answer.status_code == 401
        # a token where none belongs: in an HTTP query string
        await http.get(f"/rooms?token={customer}", headers={"authorization": f"Bearer {customer}"})

    # the query token (kept working, not recommended)
    async with connect(ws(platform, f"?token={customer}&since=0")) as socket:
        assert json.loads(await socket.recv())["type"] == "session.ready"
    # the documented way: the first frame, then a renewal
    async with connect(ws(platform)) as socket:
        await socket.send(json.dumps({"type": "auth", "token": admin}))
        assert json.loads(await socket.recv())["type"] == "session.ready"
        await socket.send(json.dumps({"type": "auth", "token": renewal}))
        assert json.loads(await socket.recv())["type"] == "session.renewed"
    # refused: a forged token in the query and in a frame
    for query, frame in ((f"?token={forged}", None), ("", forged)):
        async with connect(ws(platform, query)) as socket:
            if frame is not None:
                await socket.send(json.dumps({"type": "auth", "token": frame}))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 10)
            assert socket.close_code == 4401

    code, _ = platform.terminate(timeout=60)  # every line written and flushed
    assert code == 0
    log = platform.logs()
    # the lines that used to carry the token are there, without it
    assert "/notifications/ws?token=[redacted]&since=0" in log
    assert "[accepted]" in log
    for name, token in used.items():
        assert token not in log, f"the {name} token is in the log"
        signature = token.rsplit(".", 1)[1]
        assert signature not in log, f"the {name} token's signature is in the log"
