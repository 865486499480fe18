"""schemathesis over every operation of `make run`'s OpenAPI document, as each role
(an admin, a manager, a customer, and nobody): no answer is a 5xx, no request goes
unanswered, and the platform logs no unhandled error (issue 13). A real process on
real sockets, with its own Cognito user pool, moto server and Chime emulator.

The cases are schemathesis's (`APIOperation.as_strategy`, positive and negative
generation) driven by a plain hypothesis loop per operation: schemathesis 4's pytest
integration (`schemathesis.pytest.from_fixture`) does not run under pytest 9, and a
loop reports every failing operation and role at once instead of the first. Each
operation is fuzzed twice: with generated path parameters (mostly unknown ids), and
with the ids of a room, a channel, a customer, an attachment and a mention that
exist, so that bodies and queries reach the code behind the lookups."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.core.result import Ok

from tests.platform_run.conftest import RunningPlatform, running_platform

ROLES = ("admin", "manager", "customer", "anonymous")
# The seeded users of the local pool, one per role (carl chats with mia).
USERS = {
    "admin": ("alice", "admin"),
    "manager": ("mia", "manager"),
    "customer": ("carl", "customer"),
}
EXAMPLES = 5  # per operation, generation mode and pass (generated ids, known ids)
UNHANDLED = ("Traceback", "http.unhandled_error")

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def fuzzed_platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningPlatform]:
    # One user sends every request of a role: no rate limits (docs/security.md).
    yield from running_platform(
        "memory", None, tmp_path_factory, {"BELFRY_RATE_LIMIT_ENABLED": "false"}
    )


@pytest.fixture(scope="module")
async def tokens(fuzzed_platform: RunningPlatform) -> dict[str, str]:
    return {role: await fuzzed_platform.token(user, group) for role, (user, group) in USERS.items()}


@pytest.fixture(scope="module")
def belfry_schema(fuzzed_platform: RunningPlatform) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_platform.url}/openapi.json")


@pytest.fixture
async def known_ids(
    fuzzed_platform: RunningPlatform, tokens: dict[str, str]
) -> AsyncIterator[dict[str, str]]:
    """Ids that exist, by path parameter name: a room that is active (new for each
    role, since the admin's fuzzing may cancel it), carl's channel with mia, carl
    himself, an attachment of carl's, his message and its mention of mia."""
    admin, manager, customer = (_auth(tokens[role]) for role in ("admin", "manager", "customer"))
    async with httpx.AsyncClient(base_url=fuzzed_platform.url, timeout=15) as http:
        room = await http.post(
            "/schedule",
            headers=admin,
            json={
                "title": f"fuzz {time.time_ns()}",
                "start_at": int(time.time()) + 1,
                "duration_minutes": 60,
                "topic": "schemathesis",
                "media_region": "eu-central-1",
            },
        )
        assert room.status_code == 201, room.text
        people = (await http.get("/chat/people", headers=admin)).json()["people"]
        carl = next(p["user_id"] for p in people if p["username"] == "carl")
        mia = next(p["user_id"] for p in people if p["username"] == "mia")
        channels = (await http.get("/chat/channels", headers=customer)).json()["channels"]
        channel = next(c["channel_id"] for c in channels if c["kind"] == "customer")
        upload = await http.post(
            "/chat/attachments",
            headers=customer,
            files={"file": ("notes.txt", b"fuzz", "text/plain")},
        )
        assert upload.status_code == 201, upload.text
        posted = await http.post(
            f"/chat/channels/{channel}/messages",
            headers=customer,
            json={"content": "hello, fuzz", "mentions": [mia]},
        )
        assert posted.status_code == 201, posted.text
        mention = await _first_mention(http, manager)
        deadline = time.monotonic() + 10
        while (
            await http.get(f"/rooms/{room.json()['room_id']}", headers=customer)
        ).status_code != 200:
            assert time.monotonic() < deadline, "the seeded room did not become active"
            await asyncio.sleep(0.2)
        yield {
            "room_id": room.json()["room_id"],
            "channel_id": channel,
            "customer_id": carl,
            "attachment_id": upload.json()["attachment_id"],
            "mention_id": mention,
            "message_id": posted.json()["message_id"],
        }


async def _first_mention(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    deadline = time.monotonic() + 10
    while True:
        mentions = (await http.get("/notifications/mentions", headers=headers)).json()["mentions"]
        if mentions:
            return str(mentions[0]["mention_id"])
        assert time.monotonic() < deadline, "mia's mention never reached her inbox"
        await asyncio.sleep(0.2)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Probe:
    """Sends schemathesis's cases as one role; what came back, and what failed."""

    role: str
    headers: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def send(self, case: schemathesis.Case, headers: dict[str, str]) -> None:
        label = case.operation.label
        try:
            response = case.call(session=self.session, headers=headers, timeout=20)
        except requests.RequestException as exc:  # a dropped or hung request fails too
            self.failures.append(f"{label}: no answer ({exc!r})\n  {case.as_curl_command(headers)}")
            return
        self.statuses.setdefault(label, Counter())[response.status_code] += 1
        if response.status_code >= 500:
            self.failures.append(
                f"{label}: {response.status_code} {response.text[:1000]}\n"
                f"  {case.as_curl_command(headers)}"
            )

    def call(self, case: schemathesis.Case) -> None:
        if self.role != "anonymous":
            self.send(case, self.headers)
            return
        # nobody: the Authorization schemathesis made (often a junk bearer), then none
        self.send(case, {})
        if case.headers:
            case.headers.pop("Authorization", None)
        self.send(case, {})

    def fuzz(
        self, operation: APIOperation, mode: GenerationMode, path_parameters: dict[str, str]
    ) -> None:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.generate],  # nothing to shrink: failures are collected, not raised
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            self.call(case)

        try:
            run()
        except Unsatisfiable:
            # nothing can be made invalid (no parameters, no body): positive only
            assert mode is GenerationMode.NEGATIVE, operation.label


def _parameters(operation: APIOperation, known: dict[str, str]) -> dict[str, str]:
    names = [p.name for p in operation.path_parameters]
    missing = [n for n in names if n not in known]
    assert not missing, f"{operation.label}: no known id for {missing}; add one to known_ids"
    return {n: known[n] for n in names}


@pytest.mark.parametrize("role", ROLES)
def test_no_operation_answers_5xx(
    role: str,
    fuzzed_platform: RunningPlatform,
    belfry_schema: schemathesis.BaseSchema,
    tokens: dict[str, str],
    known_ids: dict[str, str],
) -> None:
    operations = []
    for result in belfry_schema.get_all_operations():
        # an operation schemathesis cannot read fails the test, it is not skipped
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert len(operations) >= 20, [o.label for o in operations]
    probe = Probe(role, {} if role == "anonymous" else _auth(tokens[role]))
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            probe.fuzz(operation, mode, {})
    # With ids that exist; cancelling the room last, so the rest still find it.
    for operation in sorted(operations, key=lambda o: o.method.upper() == "DELETE"):
        if operation.path_parameters:
            parameters = _parameters(operation, known_ids)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                probe.fuzz(operation, mode, parameters)
    seconds = time.monotonic() - started
    unexercised = [o.label for o in operations if not probe.statuses.get(o.label)]
    assert not unexercised, f"never answered as {role}: {unexercised}"
    assert not probe.failures, f"{len(probe.failures)} failures as {role}:\n" + "\n".join(
        probe.failures
    )
    unhandled = [
        line for line in fuzzed_platform.logs().splitlines() if any(u in line for u in UNHANDLED)
    ]
    assert not unhandled, "\n".join(unhandled[:20]) + "\n" + fuzzed_platform.tail(60)
    classes = Counter(f"{s // 100}xx" for c in probe.statuses.values() for s in c.elements())
    print(f"{role}: {dict(sorted(classes.items()))}, {len(operations)} operations, {seconds:.0f} s")
