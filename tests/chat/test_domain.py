"""chat's rules without I/O: ids, reading and mention rules, metadata, uploads."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.chat.domain import (
    METADATA_MAX_CHARS,
    Attachment,
    Caller,
    Channel,
    MessageMetadata,
    Person,
    channel_id_for,
    check_attachments,
    check_content,
    check_mentions,
    check_upload,
    chime_user_id,
    clean_file_name,
    may_read,
    request_token,
)
from shared.errors import BelfryError, PayloadTooLarge, Unprocessable

CHIME_ID = re.compile(r"[A-Za-z0-9]([A-Za-z0-9:\-_.@]{0,62}[A-Za-z0-9])?")
TOKEN = re.compile(r"[-_a-zA-Z0-9]{2,64}")

CUSTOMER_CHANNEL = Channel("customer-c1", "customer", "c1", "arn:c", "m1")
MANAGERS_CHANNEL = Channel("managers-c1", "managers", "c1", "arn:m")


@given(st.text(min_size=1, max_size=200))
def test_every_user_id_maps_to_a_valid_chime_id_and_token(user_id: str) -> None:
    assert CHIME_ID.fullmatch(chime_user_id(user_id))
    assert CHIME_ID.fullmatch(channel_id_for("customer", user_id))
    assert CHIME_ID.fullmatch(channel_id_for("managers", user_id))
    assert TOKEN.fullmatch(request_token("user", user_id))


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_different_users_never_share_an_app_instance_user(a: str, b: str) -> None:
    if a != b:
        assert chime_user_id(a) != chime_user_id(b)
        assert channel_id_for("customer", a) != channel_id_for("customer", b)


def test_safe_ids_are_kept_as_they_are() -> None:
    assert chime_user_id("3f2a9c1e-7b1d-4c1e-9a5e-0c2d4e6f8a1b") == (
        "3f2a9c1e-7b1d-4c1e-9a5e-0c2d4e6f8a1b"
    )
    assert chime_user_id("alice@example.com").startswith("h.")
    assert channel_id_for("customer", "c1") == "customer-c1"


@pytest.mark.parametrize(
    ("caller", "channel", "readable"),
    [
        (Caller("c1", "customer"), CUSTOMER_CHANNEL, True),
        (Caller("c2", "customer"), CUSTOMER_CHANNEL, False),
        (Caller("c1", "customer"), MANAGERS_CHANNEL, False),
        (Caller("m9", "manager"), CUSTOMER_CHANNEL, True),
        (Caller("m9", "manager"), MANAGERS_CHANNEL, True),
        # role first: an admin (no `manager` group) reads customer channels only
        (Caller("a1", "admin"), CUSTOMER_CHANNEL, True),
        (Caller("a1", "admin"), MANAGERS_CHANNEL, False),
        # a demoted manager (their token now says customer) reads neither
        (Caller("m1", "customer"), CUSTOMER_CHANNEL, False),
        (Caller("m1", "customer"), MANAGERS_CHANNEL, False),
        (Caller("m1", None), CUSTOMER_CHANNEL, False),
    ],
)
def test_who_reads_a_channel(caller: Caller, channel: Channel, readable: bool) -> None:
    """Whatever the membership table says: `may_read` does not even ask."""
    assert may_read(channel, caller) is readable


PEOPLE = {
    "c1": Person("c1", "customer"),
    "c2": Person("c2", "customer"),
    "m1": Person("m1", "manager"),
    "m2": Person("m2", "manager"),
}


@pytest.mark.parametrize(
    ("sender", "channel", "mentioned", "reason"),
    [
        ("c1", CUSTOMER_CHANNEL, "m2", None),
        ("c1", CUSTOMER_CHANNEL, "c2", "customers_mention_managers_only"),
        ("m1", CUSTOMER_CHANNEL, "c1", None),
        ("m1", CUSTOMER_CHANNEL, "c2", "cannot_read_channel"),
        ("m1", MANAGERS_CHANNEL, "c1", "not_a_manager"),
        ("m1", MANAGERS_CHANNEL, "m2", None),
        ("m1", MANAGERS_CHANNEL, "m1", "self_mention"),
        ("m1", MANAGERS_CHANNEL, "ghost", "unknown_user"),
    ],
)
def test_mention_rules(sender: str, channel: Channel, mentioned: str, reason: str | None) -> None:
    caller = Caller(sender, PEOPLE[sender].role)
    wanted = {mentioned: PEOPLE.get(mentioned)}
    if reason is None:
        assert check_mentions(channel, caller, wanted) == [mentioned]
        return
    with pytest.raises(Unprocessable) as refused:
        check_mentions(channel, caller, wanted)
    assert refused.value.details == [{"user_id": mentioned, "reason": reason}]


@given(
    st.lists(st.text(min_size=1, max_size=128), max_size=50),
    st.lists(st.text(min_size=1, max_size=255), max_size=20),
)
def test_metadata_always_fits_and_is_json(mentions: list[str], names: list[str]) -> None:
    refs = [
        Attachment(f"id{i}", "c1", f"attachments/id{i}", n, 1, "text/plain").ref()
        for i, n in enumerate(names)
    ]
    text = MessageMetadata("0000000000001-abc", "c1" * 64, mentions, refs).encode()
    assert len(text) <= METADATA_MAX_CHARS
    decoded = json.loads(text)
    if "ref" in decoded:
        assert decoded["mention_count"] == len(mentions)
        assert decoded["attachment_count"] == len(refs)
    else:
        assert decoded["mentions"] == mentions
        assert decoded["attachments"] == refs


def test_content_limits_count_bytes() -> None:
    assert check_content("é" * 2048, 4096) == "é" * 2048
    with pytest.raises(Unprocessable):
        check_content("é" * 2049, 4096)
    with pytest.raises(Unprocessable):
        check_content(" \t\n", 4096)


def test_upload_limits() -> None:
    allowed = ("text/plain",)
    check_upload("text/plain", 10, allowed=allowed, max_bytes=10)
    with pytest.raises(PayloadTooLarge):
        check_upload("text/plain", 11, allowed=allowed, max_bytes=10)
    with pytest.raises(BelfryError) as wrong:
        check_upload("text/html", 1, allowed=allowed, max_bytes=10)
    assert wrong.value.status == 415


def test_file_names_lose_paths_and_control_characters() -> None:
    assert clean_file_name("../../etc/passwd") == "passwd"
    assert clean_file_name("C:\\Users\\x\\a\x00b.pdf") == "ab.pdf"
    assert clean_file_name("") == "attachment"
    assert clean_file_name(None) == "attachment"


def test_attachments_must_be_the_senders_and_unattached() -> None:
    mine = Attachment("a1", "c1", "attachments/a1", "a", 1, "text/plain")
    used = Attachment("a2", "c1", "attachments/a2", "a", 1, "text/plain", channel_id="x")
    theirs = Attachment("a3", "c2", "attachments/a3", "a", 1, "text/plain")
    assert check_attachments(["a1"], {"a1": mine}, "c1") == [mine]
    with pytest.raises(Unprocessable) as refused:
        check_attachments(["a2", "a3", "a4"], {"a2": used, "a3": theirs}, "c1")
    assert [d["reason"] for d in refused.value.details] == [
        "already_attached",
        "unknown_attachment",
        "unknown_attachment",
    ]
