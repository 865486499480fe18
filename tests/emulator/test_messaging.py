"""chime-sdk-messaging: operations through real clients, access rules and limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulators.chime.control import EmulatorControl
from tests.emulator.world import Clients, World, new_channel


def _code(error: ClientError) -> tuple[str, int]:
    return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]


def send(messaging: Any, channel: str, bearer: str, content: str = "hi", **extra: Any) -> str:
    return str(
        messaging.send_channel_message(
            ChannelArn=channel,
            Content=content,
            Type=extra.pop("Type", "STANDARD"),
            Persistence=extra.pop("Persistence", "PERSISTENT"),
            ChimeBearer=bearer,
            **extra,
        )["MessageId"]
    )


# Channels.


def test_create_and_describe_channel(messaging: Any, world: World) -> None:
    channel = new_channel(
        messaging, world, Name="support", Mode="RESTRICTED", Privacy="PRIVATE", Metadata="{}"
    )
    assert channel.startswith(f"{world.app_instance_arn}/channel/")
    described = messaging.describe_channel(ChannelArn=channel, ChimeBearer=world.alice)["Channel"]
    assert described["ChannelArn"] == channel
    assert (described["Name"], described["Mode"], described["Privacy"]) == (
        "support",
        "RESTRICTED",
        "PRIVATE",
    )
    assert described["CreatedBy"] == {"Arn": world.alice, "Name": "Alice"}
    assert isinstance(described["CreatedTimestamp"], dt.datetime)
    membership = messaging.describe_channel_membership(
        ChannelArn=channel, MemberArn=world.alice, ChimeBearer=world.alice
    )["ChannelMembership"]
    assert membership["Member"]["Arn"] == world.alice, "the creator is a member"


def test_channel_id_and_token(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world, ChannelId="customer-42", ClientRequestToken="c42")
    assert channel == f"{world.app_instance_arn}/channel/customer-42"
    assert new_channel(messaging, world, ChannelId="customer-42", ClientRequestToken="c42") == (
        channel
    )
    with pytest.raises(messaging.exceptions.ConflictException):
        new_channel(messaging, world, ChannelId="customer-42", ClientRequestToken="other")


def test_create_channel_with_members_and_moderators(messaging: Any, world: World) -> None:
    channel = new_channel(
        messaging, world, MemberArns=[world.bob], ModeratorArns=[world.carol], Mode="RESTRICTED"
    )
    listed = messaging.list_channel_memberships(ChannelArn=channel, ChimeBearer=world.bob)
    assert {m["Member"]["Arn"] for m in listed["ChannelMemberships"]} == {
        world.alice,
        world.bob,
        world.carol,
    }
    # carol moderates the restricted channel, bob does not.
    messaging.create_channel_membership(
        ChannelArn=channel, MemberArn=world.dana, Type="DEFAULT", ChimeBearer=world.carol
    )
    with pytest.raises(messaging.exceptions.ForbiddenException):
        messaging.delete_channel_membership(
            ChannelArn=channel, MemberArn=world.dana, ChimeBearer=world.bob
        )


def test_list_channels(messaging: Any, world: World) -> None:
    public = new_channel(messaging, world, Name="public")
    private = new_channel(messaging, world, Name="private", Privacy="PRIVATE")
    as_user = messaging.list_channels(AppInstanceArn=world.app_instance_arn, ChimeBearer=world.bob)
    assert [c["ChannelArn"] for c in as_user["Channels"]] == [public]
    with pytest.raises(messaging.exceptions.ForbiddenException):
        messaging.list_channels(
            AppInstanceArn=world.app_instance_arn, Privacy="PRIVATE", ChimeBearer=world.bob
        )
    as_admin = messaging.list_channels(
        AppInstanceArn=world.app_instance_arn, Privacy="PRIVATE", ChimeBearer=world.dana
    )
    assert [c["ChannelArn"] for c in as_admin["Channels"]] == [private]


def test_delete_channel(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world, MemberArns=[world.bob])
    with pytest.raises(messaging.exceptions.ForbiddenException):
        messaging.delete_channel(ChannelArn=channel, ChimeBearer=world.bob)
    messaging.delete_channel(ChannelArn=channel, ChimeBearer=world.alice)
    with pytest.raises(messaging.exceptions.NotFoundException):
        messaging.describe_channel(ChannelArn=channel, ChimeBearer=world.alice)


# Who may do what.


def test_the_bearer_header_is_required(messaging: Any, world: World, emulator_url: str) -> None:
    import httpx

    channel = new_channel(messaging, world)
    response = httpx.get(f"{emulator_url}/channels/{channel.replace('/', '%2F')}")
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "BadRequestException"
    assert "ChimeBearer: is required" in response.json()["Message"]


def test_an_unknown_bearer_is_forbidden(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world)
    with pytest.raises(ClientError) as caught:
        messaging.describe_channel(ChannelArn=channel, ChimeBearer=world.user("nobody"))
    assert _code(caught.value) == ("ForbiddenException", 403)


def test_non_members_may_not_use_a_channel(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world)
    message = send(messaging, channel, world.alice)
    calls = {
        "DescribeChannel": lambda: messaging.describe_channel(
            ChannelArn=channel, ChimeBearer=world.bob
        ),
        "SendChannelMessage": lambda: send(messaging, channel, world.bob),
        "ListChannelMessages": lambda: messaging.list_channel_messages(
            ChannelArn=channel, ChimeBearer=world.bob
        ),
        "GetChannelMessage": lambda: messaging.get_channel_message(
            ChannelArn=channel, MessageId=message, ChimeBearer=world.bob
        ),
        "ListChannelMemberships": lambda: messaging.list_channel_memberships(
            ChannelArn=channel, ChimeBearer=world.bob
        ),
        "CreateChannelMembership": lambda: messaging.create_channel_membership(
            ChannelArn=channel, MemberArn=world.bob, Type="DEFAULT", ChimeBearer=world.bob
        ),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as caught:
            call()
        assert _code(caught.value) == ("ForbiddenException", 403), name


def test_an_app_instance_admin_manages_channels_without_being_a_member(
    messaging: Any, world: World
) -> None:
    channel = new_channel(messaging, world, Mode="RESTRICTED", Privacy="PRIVATE")
    dana = world.dana
    assert messaging.describe_channel(ChannelArn=channel, ChimeBearer=dana)["Channel"]
    messaging.create_channel_membership(
        ChannelArn=channel, MemberArn=world.bob, Type="DEFAULT", ChimeBearer=dana
    )
    messaging.batch_create_channel_membership(
        ChannelArn=channel, MemberArns=[world.carol], ChimeBearer=dana
    )
    listed = messaging.list_channel_memberships(ChannelArn=channel, ChimeBearer=dana)
    assert {m["Member"]["Arn"] for m in listed["ChannelMemberships"]} == {
        world.alice,
        world.bob,
        world.carol,
    }
    described = messaging.describe_channel_membership(
        ChannelArn=channel, MemberArn=world.bob, ChimeBearer=dana
    )["ChannelMembership"]
    assert described["InvitedBy"]["Arn"] == dana
    messaging.delete_channel_membership(ChannelArn=channel, MemberArn=world.carol, ChimeBearer=dana)

    # ...but must be a member to read or send messages.
    with pytest.raises(messaging.exceptions.ForbiddenException):
        send(messaging, channel, dana)
    with pytest.raises(messaging.exceptions.ForbiddenException):
        messaging.list_channel_messages(ChannelArn=channel, ChimeBearer=dana)
    messaging.create_channel_membership(
        ChannelArn=channel, MemberArn=dana, Type="DEFAULT", ChimeBearer=dana
    )
    send(messaging, channel, dana)
    messaging.delete_channel(ChannelArn=channel, ChimeBearer=dana)


def test_only_moderators_add_members_to_restricted_channels(messaging: Any, world: World) -> None:
    unrestricted = new_channel(messaging, world, MemberArns=[world.bob])
    messaging.create_channel_membership(
        ChannelArn=unrestricted, MemberArn=world.carol, Type="DEFAULT", ChimeBearer=world.bob
    )
    restricted = new_channel(messaging, world, MemberArns=[world.bob], Mode="RESTRICTED")
    with pytest.raises(messaging.exceptions.ForbiddenException):
        messaging.create_channel_membership(
            ChannelArn=restricted, MemberArn=world.carol, Type="DEFAULT", ChimeBearer=world.bob
        )


def test_members_leave_and_retried_deletes_succeed(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world, MemberArns=[world.bob])
    messaging.delete_channel_membership(
        ChannelArn=channel, MemberArn=world.bob, ChimeBearer=world.bob
    )
    messaging.delete_channel_membership(
        ChannelArn=channel, MemberArn=world.bob, ChimeBearer=world.alice
    )
    with pytest.raises(messaging.exceptions.NotFoundException):
        messaging.describe_channel_membership(
            ChannelArn=channel, MemberArn=world.bob, ChimeBearer=world.alice
        )


# Memberships.


def test_batch_create_channel_membership(messaging: Any, world: World, identity: Any) -> None:
    channel = new_channel(messaging, world)
    extra = [
        identity.create_app_instance_user(
            AppInstanceArn=world.app_instance_arn, AppInstanceUserId=f"u{n}", Name=f"U{n}"
        )["AppInstanceUserArn"]
        for n in range(99)
    ]
    result = messaging.batch_create_channel_membership(
        ChannelArn=channel, MemberArns=[*extra, world.user("ghost")], ChimeBearer=world.alice
    )
    batch = result["BatchChannelMemberships"]
    assert batch["InvitedBy"]["Arn"] == world.alice
    assert batch["Type"] == "DEFAULT"
    assert len(batch["Members"]) == 99
    assert [(e["MemberArn"], e["ErrorCode"]) for e in result["Errors"]] == [
        (world.user("ghost"), "NotFound")
    ]
    with pytest.raises(messaging.exceptions.BadRequestException) as caught:
        messaging.batch_create_channel_membership(
            ChannelArn=channel, MemberArns=[*extra, world.bob, world.carol], ChimeBearer=world.alice
        )
    assert "maximum of 100" in caught.value.response["Error"]["Message"]


def test_list_channel_memberships_pages_and_hides_hidden(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world, MemberArns=[world.bob, world.carol])
    messaging.create_channel_membership(
        ChannelArn=channel, MemberArn=world.dana, Type="HIDDEN", ChimeBearer=world.alice
    )
    first = messaging.list_channel_memberships(
        ChannelArn=channel, MaxResults=2, ChimeBearer=world.alice
    )
    second = messaging.list_channel_memberships(
        ChannelArn=channel, NextToken=first["NextToken"], MaxResults=2, ChimeBearer=world.alice
    )
    assert "NextToken" not in second
    members = [
        m["Member"]["Arn"] for m in first["ChannelMemberships"] + second["ChannelMemberships"]
    ]
    assert members == [world.alice, world.bob, world.carol]
    hidden = messaging.list_channel_memberships(
        ChannelArn=channel, Type="HIDDEN", ChimeBearer=world.alice
    )
    assert [m["Member"]["Arn"] for m in hidden["ChannelMemberships"]] == [world.dana]


def test_list_channel_memberships_for_app_instance_user(messaging: Any, world: World) -> None:
    first = new_channel(messaging, world, MemberArns=[world.bob])
    new_channel(messaging, world)
    mine = messaging.list_channel_memberships_for_app_instance_user(ChimeBearer=world.bob)
    assert [m["ChannelSummary"]["ChannelArn"] for m in mine["ChannelMemberships"]] == [first]
    with pytest.raises(messaging.exceptions.ForbiddenException):
        messaging.list_channel_memberships_for_app_instance_user(
            AppInstanceUserArn=world.alice, ChimeBearer=world.bob
        )


# Messages.


def test_message_lifecycle(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world, MemberArns=[world.bob])
    sent = messaging.send_channel_message(
        ChannelArn=channel,
        Content="hello",
        Metadata='{"attachments": []}',
        Type="STANDARD",
        Persistence="PERSISTENT",
        ClientRequestToken="m1",
        ChimeBearer=world.bob,
    )
    assert sent["ChannelArn"] == channel
    assert sent["Status"] == {"Value": "SENT"}
    message = messaging.get_channel_message(
        ChannelArn=channel, MessageId=sent["MessageId"], ChimeBearer=world.alice
    )["ChannelMessage"]
    assert message["Content"] == "hello"
    assert message["Metadata"] == '{"attachments": []}'
    assert message["Sender"] == {"Arn": world.bob, "Name": "Bob"}
    assert message["Redacted"] is False
    assert "LastEditedTimestamp" not in message

    retried = messaging.send_channel_message(
        ChannelArn=channel,
        Content="hello",
        Type="STANDARD",
        Persistence="PERSISTENT",
        ClientRequestToken="m1",
        ChimeBearer=world.bob,
    )
    assert retried["MessageId"] == sent["MessageId"], "the same token does not send twice"
    listed = messaging.list_channel_messages(ChannelArn=channel, ChimeBearer=world.bob)
    assert len(listed["ChannelMessages"]) == 1

    with pytest.raises(messaging.exceptions.ForbiddenException):
        messaging.update_channel_message(
            ChannelArn=channel, MessageId=sent["MessageId"], Content="x", ChimeBearer=world.alice
        )
    messaging.update_channel_message(
        ChannelArn=channel, MessageId=sent["MessageId"], Content="hello!", ChimeBearer=world.bob
    )
    edited = messaging.get_channel_message(
        ChannelArn=channel, MessageId=sent["MessageId"], ChimeBearer=world.bob
    )["ChannelMessage"]
    assert edited["Content"] == "hello!"
    assert edited["Metadata"] == '{"attachments": []}', "an edit without Metadata keeps it"
    assert edited["LastEditedTimestamp"] >= edited["CreatedTimestamp"]

    messaging.redact_channel_message(
        ChannelArn=channel, MessageId=sent["MessageId"], ChimeBearer=world.alice
    )
    redacted = messaging.list_channel_messages(ChannelArn=channel, ChimeBearer=world.bob)[
        "ChannelMessages"
    ][0]
    assert redacted["Redacted"] is True
    assert "Content" not in redacted
    assert "Metadata" not in redacted

    messaging.delete_channel_message(
        ChannelArn=channel, MessageId=sent["MessageId"], ChimeBearer=world.bob
    )
    with pytest.raises(messaging.exceptions.NotFoundException):
        messaging.get_channel_message(
            ChannelArn=channel, MessageId=sent["MessageId"], ChimeBearer=world.bob
        )
    assert (
        messaging.list_channel_messages(ChannelArn=channel, ChimeBearer=world.bob)[
            "ChannelMessages"
        ]
        == []
    )


def test_only_sender_moderators_and_admins_delete_messages(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world, MemberArns=[world.bob, world.carol])
    message = send(messaging, channel, world.bob)
    with pytest.raises(messaging.exceptions.ForbiddenException):
        messaging.delete_channel_message(
            ChannelArn=channel, MessageId=message, ChimeBearer=world.carol
        )
    messaging.delete_channel_message(ChannelArn=channel, MessageId=message, ChimeBearer=world.alice)


def test_metadata_is_limited_to_1024_characters(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world)
    send(messaging, channel, world.alice, Metadata="m" * 1024)
    with pytest.raises(ClientError) as caught:
        send(messaging, channel, world.alice, Metadata="m" * 1025)
    assert _code(caught.value) == ("BadRequestException", 400)
    assert "Metadata" in caught.value.response["Error"]["Message"]
    with pytest.raises(messaging.exceptions.BadRequestException):
        messaging.create_channel(
            AppInstanceArn=world.app_instance_arn,
            Name="c",
            Metadata="m" * 1025,
            ChimeBearer=world.alice,
        )


def test_content_limits(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world)
    send(messaging, channel, world.alice, "x" * 4096)
    with pytest.raises(messaging.exceptions.BadRequestException):
        send(messaging, channel, world.alice, "x" * 4097)
    with pytest.raises(messaging.exceptions.BadRequestException):
        send(messaging, channel, world.alice, "é" * 2049)  # 4098 bytes
    send(messaging, channel, world.alice, "c" * 30, Type="CONTROL")
    with pytest.raises(messaging.exceptions.BadRequestException):
        send(messaging, channel, world.alice, "c" * 31, Type="CONTROL")
    with pytest.raises(messaging.exceptions.BadRequestException):
        send(messaging, channel, world.alice, "c", Type="CONTROL", Metadata="{}")


def test_enums_are_checked(messaging: Any, world: World, emulator_url: str) -> None:
    import httpx

    channel = new_channel(messaging, world)
    response = httpx.post(
        f"{emulator_url}/channels/{channel.replace('/', '%2F')}/messages",
        headers={"x-amz-chime-bearer": world.alice},
        json={
            "Content": "x",
            "Type": "SHOUTING",
            "Persistence": "PERSISTENT",
            "ClientRequestToken": "tok",
        },
    )
    assert response.status_code == 400
    assert "Type: must be one of STANDARD, CONTROL" in response.json()["Message"]


async def test_list_channel_messages_pages_in_both_orders(
    messaging: Any, world: World, control: EmulatorControl
) -> None:
    channel = new_channel(messaging, world)
    sent = []
    for n in range(7):
        sent.append(send(messaging, channel, world.alice, f"m{n}"))
        await control.advance_clock(1)

    def walk(order: str | None) -> list[str]:
        kwargs: dict[str, Any] = {"ChannelArn": channel, "ChimeBearer": world.alice}
        kwargs.update({"MaxResults": 3} | ({"SortOrder": order} if order else {}))
        seen: list[str] = []
        while True:
            page = messaging.list_channel_messages(**kwargs)
            assert len(page["ChannelMessages"]) <= 3
            seen += [m["MessageId"] for m in page["ChannelMessages"]]
            if "NextToken" not in page:
                return seen
            kwargs["NextToken"] = page["NextToken"]

    assert walk("ASCENDING") == sent
    assert walk("DESCENDING") == sent[::-1]
    assert walk(None) == sent[::-1], "Chime lists newest first by default"

    messages = messaging.list_channel_messages(
        ChannelArn=channel, SortOrder="ASCENDING", ChimeBearer=world.alice
    )["ChannelMessages"]
    stamps = [m["CreatedTimestamp"] for m in messages]
    assert stamps == sorted(stamps)
    window = messaging.list_channel_messages(
        ChannelArn=channel,
        SortOrder="ASCENDING",
        NotBefore=stamps[2],
        NotAfter=stamps[4],
        ChimeBearer=world.alice,
    )["ChannelMessages"]
    assert [m["MessageId"] for m in window] == sent[2:5]


def test_a_next_token_belongs_to_its_listing(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world)
    for n in range(3):
        send(messaging, channel, world.alice, f"m{n}")
    token = messaging.list_channel_messages(
        ChannelArn=channel, MaxResults=1, SortOrder="ASCENDING", ChimeBearer=world.alice
    )["NextToken"]
    with pytest.raises(messaging.exceptions.BadRequestException):
        messaging.list_channel_messages(
            ChannelArn=channel, NextToken=token, SortOrder="DESCENDING", ChimeBearer=world.alice
        )


def test_non_persistent_messages_are_not_stored(messaging: Any, world: World) -> None:
    channel = new_channel(messaging, world)
    send(messaging, channel, world.alice, "typing", Type="CONTROL", Persistence="NON_PERSISTENT")
    assert (
        messaging.list_channel_messages(ChannelArn=channel, ChimeBearer=world.alice)[
            "ChannelMessages"
        ]
        == []
    )


def test_messaging_session_endpoint_points_at_the_emulator(
    messaging: Any, emulator_url: str
) -> None:
    url = messaging.get_messaging_session_endpoint()["Endpoint"]["Url"]
    assert f"http://{url}" == emulator_url


async def test_messaging_with_aiobotocore(aio: Clients, identity: Any, world: World) -> None:
    msg = aio.messaging
    created = await msg.create_channel(
        AppInstanceArn=world.app_instance_arn,
        Name="aio",
        ClientRequestToken="aio-channel",
        ChimeBearer=world.alice,
    )
    channel = created["ChannelArn"]
    described = await msg.describe_channel(ChannelArn=channel, ChimeBearer=world.alice)
    assert described["Channel"]["Name"] == "aio"
    listed = await msg.list_channels(AppInstanceArn=world.app_instance_arn, ChimeBearer=world.bob)
    assert [c["ChannelArn"] for c in listed["Channels"]] == [channel]
    await msg.create_channel_membership(
        ChannelArn=channel, MemberArn=world.bob, Type="DEFAULT", ChimeBearer=world.alice
    )
    await msg.batch_create_channel_membership(
        ChannelArn=channel, MemberArns=[world.carol], ChimeBearer=world.alice
    )
    membership = await msg.describe_channel_membership(
        ChannelArn=channel, MemberArn=world.carol, ChimeBearer=world.bob
    )
    assert membership["ChannelMembership"]["Member"]["Name"] == "Carol"
    members = await msg.list_channel_memberships(ChannelArn=channel, ChimeBearer=world.bob)
    assert len(members["ChannelMemberships"]) == 3
    await msg.delete_channel_membership(
        ChannelArn=channel, MemberArn=world.carol, ChimeBearer=world.alice
    )
    sent = await msg.send_channel_message(
        ChannelArn=channel,
        Content="from aio",
        Type="STANDARD",
        Persistence="PERSISTENT",
        ChimeBearer=world.bob,
    )
    await msg.update_channel_message(
        ChannelArn=channel, MessageId=sent["MessageId"], Content="edited", ChimeBearer=world.bob
    )
    got = await msg.get_channel_message(
        ChannelArn=channel, MessageId=sent["MessageId"], ChimeBearer=world.alice
    )
    assert got["ChannelMessage"]["Content"] == "edited"
    page = await msg.list_channel_messages(ChannelArn=channel, ChimeBearer=world.alice)
    assert [m["Content"] for m in page["ChannelMessages"]] == ["edited"]
    await msg.delete_channel_message(
        ChannelArn=channel, MessageId=sent["MessageId"], ChimeBearer=world.bob
    )
    endpoint = await msg.get_messaging_session_endpoint()
    assert endpoint["Endpoint"]["Url"]
    await msg.delete_channel(ChannelArn=channel, ChimeBearer=world.alice)
    with pytest.raises(msg.exceptions.NotFoundException):
        await msg.describe_channel(ChannelArn=channel, ChimeBearer=world.alice)
