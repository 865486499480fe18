"""chime-sdk-identity through real boto3 and aiobotocore clients."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator.world import Clients, World

ARN_PREFIX = "arn:aws:chime:us-east-1:123456789012:app-instance/"


def test_app_instance_lifecycle(identity: Any) -> None:
    arn = identity.create_app_instance(Name="belfry", Metadata="m", ClientRequestToken="tok-1")[
        "AppInstanceArn"
    ]
    assert arn.startswith(ARN_PREFIX)
    assert len(arn.removeprefix(ARN_PREFIX)) == 36  # a uuid

    described = identity.describe_app_instance(AppInstanceArn=arn)["AppInstance"]
    assert described["AppInstanceArn"] == arn
    assert described["Name"] == "belfry"
    assert described["Metadata"] == "m"
    assert isinstance(described["CreatedTimestamp"], dt.datetime)

    again = identity.create_app_instance(Name="belfry", ClientRequestToken="tok-1")
    assert again["AppInstanceArn"] == arn, "the same ClientRequestToken returns the same instance"
    other = identity.create_app_instance(Name="belfry", ClientRequestToken="tok-2")
    assert other["AppInstanceArn"] != arn

    listed = identity.list_app_instances()["AppInstances"]
    assert [a["AppInstanceArn"] for a in listed] == [arn, other["AppInstanceArn"]]


def test_list_app_instances_pages(identity: Any) -> None:
    created = [
        identity.create_app_instance(Name=f"i{n}", ClientRequestToken=f"t{n}")["AppInstanceArn"]
        for n in range(5)
    ]
    seen: list[str] = []
    kwargs: dict[str, Any] = {"MaxResults": 2}
    while True:
        page = identity.list_app_instances(**kwargs)
        seen += [a["AppInstanceArn"] for a in page["AppInstances"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert seen == created


def test_users_lifecycle(identity: Any, world: World) -> None:
    user = identity.describe_app_instance_user(AppInstanceUserArn=world.alice)["AppInstanceUser"]
    assert user["AppInstanceUserArn"] == f"{world.app_instance_arn}/user/alice"
    assert user["Name"] == "Alice"

    listed = identity.list_app_instance_users(AppInstanceArn=world.app_instance_arn)
    assert listed["AppInstanceArn"] == world.app_instance_arn
    assert {u["AppInstanceUserArn"] for u in listed["AppInstanceUsers"]} == {
        world.alice,
        world.bob,
        world.carol,
        world.dana,
    }

    identity.update_app_instance_user(AppInstanceUserArn=world.bob, Name="Robert", Metadata="x")
    bob = identity.describe_app_instance_user(AppInstanceUserArn=world.bob)["AppInstanceUser"]
    assert (bob["Name"], bob["Metadata"]) == ("Robert", "x")

    identity.delete_app_instance_user(AppInstanceUserArn=world.carol)
    with pytest.raises(identity.exceptions.NotFoundException):
        identity.describe_app_instance_user(AppInstanceUserArn=world.carol)


def test_a_user_id_is_unique_in_its_app_instance(identity: Any, world: World) -> None:
    with pytest.raises(identity.exceptions.ConflictException) as caught:
        identity.create_app_instance_user(
            AppInstanceArn=world.app_instance_arn,
            AppInstanceUserId="alice",
            Name="Another Alice",
            ClientRequestToken="a-new-token",
        )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    retried = identity.create_app_instance_user(
        AppInstanceArn=world.app_instance_arn,
        AppInstanceUserId="alice",
        Name="Alice",
        ClientRequestToken="user-alice",
    )
    assert retried["AppInstanceUserArn"] == world.alice, "a retry with its token succeeds"


def test_admins(identity: Any, world: World) -> None:
    created = identity.create_app_instance_admin(
        AppInstanceArn=world.app_instance_arn, AppInstanceAdminArn=world.bob
    )
    assert created["AppInstanceAdmin"] == {"Arn": world.bob, "Name": "Bob"}
    assert created["AppInstanceArn"] == world.app_instance_arn

    described = identity.describe_app_instance_admin(
        AppInstanceArn=world.app_instance_arn, AppInstanceAdminArn=world.bob
    )["AppInstanceAdmin"]
    assert described["Admin"]["Arn"] == world.bob
    assert isinstance(described["CreatedTimestamp"], dt.datetime)

    listed = identity.list_app_instance_admins(AppInstanceArn=world.app_instance_arn)
    assert {a["Admin"]["Arn"] for a in listed["AppInstanceAdmins"]} == {world.bob, world.dana}

    identity.delete_app_instance_admin(
        AppInstanceArn=world.app_instance_arn, AppInstanceAdminArn=world.bob
    )
    with pytest.raises(identity.exceptions.NotFoundException):
        identity.describe_app_instance_admin(
            AppInstanceArn=world.app_instance_arn, AppInstanceAdminArn=world.bob
        )


def test_users_of_unknown_app_instances_are_not_found(identity: Any) -> None:
    with pytest.raises(ClientError) as caught:
        identity.create_app_instance_user(
            AppInstanceArn=f"{ARN_PREFIX}00000000-0000-0000-0000-000000000000",
            AppInstanceUserId="zed",
            Name="Zed",
        )
    assert caught.value.response["Error"]["Code"] == "NotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


async def test_identity_with_aiobotocore(aio: Clients) -> None:
    created = await aio.identity.create_app_instance(Name="async", ClientRequestToken="a1")
    arn = created["AppInstanceArn"]
    user = await aio.identity.create_app_instance_user(
        AppInstanceArn=arn, AppInstanceUserId="eve", Name="Eve", Metadata="{}"
    )
    described = await aio.identity.describe_app_instance_user(
        AppInstanceUserArn=user["AppInstanceUserArn"]
    )
    assert described["AppInstanceUser"]["Metadata"] == "{}"
    await aio.identity.create_app_instance_admin(
        AppInstanceArn=arn, AppInstanceAdminArn=user["AppInstanceUserArn"]
    )
    admins = await aio.identity.list_app_instance_admins(AppInstanceArn=arn)
    assert [a["Admin"]["Arn"] for a in admins["AppInstanceAdmins"]] == [user["AppInstanceUserArn"]]
    await aio.identity.delete_app_instance_user(AppInstanceUserArn=user["AppInstanceUserArn"])
    users = await aio.identity.list_app_instance_users(AppInstanceArn=arn)
    assert users["AppInstanceUsers"] == []
    await aio.identity.delete_app_instance(AppInstanceArn=arn)
    with pytest.raises(aio.identity.exceptions.NotFoundException):
        await aio.identity.describe_app_instance(AppInstanceArn=arn)
