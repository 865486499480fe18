"""Every implemented operation answers with what its botocore output shape requires.

Walks each operation through a real boto3 client and a real aiobotocore
client, and checks the parsed response against the model: every member marked
required is there, at every depth, and every member present has the shape's
type.
"""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.model import ListShape, MapShape, Shape, StructureShape

from emulators.chime.clock import ManualClock
from emulators.chime.emulator import Emulator
from emulators.chime.routing import load_service_models
from tests.emulator.world import Clients, World, new_channel, new_meeting

PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "long": int,
    "boolean": bool,
    "timestamp": dt.datetime,
    "float": float,
    "double": float,
    "blob": bytes,
    "list": list,
    "structure": dict,
    "map": dict,
}


def shape_problems(shape: Shape, value: Any, path: str) -> list[str]:
    expected = PYTHON_TYPES[shape.type_name]
    if not isinstance(value, expected) or (shape.type_name == "integer" and value is True):
        return [f"{path}: {type(value).__name__} is not a {shape.type_name}"]
    return _nested_problems(shape, value, path)


def _nested_problems(shape: Shape, value: Any, path: str) -> list[str]:
    problems: list[str] = []
    if isinstance(shape, StructureShape):
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(f"{path}.{name}: required but missing")
        for name, member in shape.members.items():
            if name in value:
                problems += shape_problems(member, value[name], f"{path}.{name}")
        unknown = set(value) - set(shape.members) - {"ResponseMetadata"}
        problems += [f"{path}.{name}: not in the shape" for name in sorted(unknown)]
    elif isinstance(shape, ListShape):
        for index, item in enumerate(value):
            problems += shape_problems(shape.member, item, f"{path}[{index}]")
    elif isinstance(shape, MapShape):
        for key, item in value.items():
            problems += shape_problems(shape.value, item, f"{path}.{key}")
    return problems


@dataclass
class Stage:
    """Resources for the operations to act on.

    `identity`, `meetings` and `messaging` are the clients under test (boto3 or
    aiobotocore); `setup` holds boto3 clients that make what a call needs.
    """

    identity: Any
    meetings: Any
    messaging: Any
    setup: Clients
    world: World
    channel: str
    message_id: str
    meeting_id: str
    attendee_id: str

    def spare_user(self) -> str:
        return str(
            self.setup.identity.create_app_instance_user(
                AppInstanceArn=self.world.app_instance_arn,
                AppInstanceUserId=f"spare-{uuid.uuid4().hex[:8]}",
                Name="Spare",
            )["AppInstanceUserArn"]
        )

    def spare_message(self) -> str:
        return str(
            self.setup.messaging.send_channel_message(
                ChannelArn=self.channel,
                Content="spare",
                Type="STANDARD",
                Persistence="PERSISTENT",
                ChimeBearer=self.world.alice,
            )["MessageId"]
        )


# A recipe makes one call with the clients under test: a response, or (with
# aiobotocore) an awaitable of one.
Recipe = Callable[[Stage], Any]

RECIPES: dict[tuple[str, str], Recipe] = {
    # identity
    ("chime-sdk-identity", "CreateAppInstance"): lambda s: s.identity.create_app_instance(Name="x"),
    ("chime-sdk-identity", "DescribeAppInstance"): lambda s: s.identity.describe_app_instance(
        AppInstanceArn=s.world.app_instance_arn
    ),
    ("chime-sdk-identity", "ListAppInstances"): lambda s: s.identity.list_app_instances(),
    ("chime-sdk-identity", "UpdateAppInstance"): lambda s: s.identity.update_app_instance(
        AppInstanceArn=s.world.app_instance_arn, Name="renamed", Metadata="m"
    ),
    ("chime-sdk-identity", "DeleteAppInstance"): lambda s: s.identity.delete_app_instance(
        AppInstanceArn=s.setup.identity.create_app_instance(Name="doomed")["AppInstanceArn"]
    ),
    ("chime-sdk-identity", "CreateAppInstanceUser"): lambda s: s.identity.create_app_instance_user(
        AppInstanceArn=s.world.app_instance_arn, AppInstanceUserId="new-user", Name="New"
    ),
    ("chime-sdk-identity", "DescribeAppInstanceUser"): lambda s: (
        s.identity.describe_app_instance_user(AppInstanceUserArn=s.world.alice)
    ),
    ("chime-sdk-identity", "ListAppInstanceUsers"): lambda s: s.identity.list_app_instance_users(
        AppInstanceArn=s.world.app_instance_arn
    ),
    ("chime-sdk-identity", "UpdateAppInstanceUser"): lambda s: s.identity.update_app_instance_user(
        AppInstanceUserArn=s.world.carol, Name="Caroline", Metadata=""
    ),
    ("chime-sdk-identity", "DeleteAppInstanceUser"): lambda s: s.identity.delete_app_instance_user(
        AppInstanceUserArn=s.spare_user()
    ),
    ("chime-sdk-identity", "CreateAppInstanceAdmin"): lambda s: (
        s.identity.create_app_instance_admin(
            AppInstanceArn=s.world.app_instance_arn, AppInstanceAdminArn=s.world.bob
        )
    ),
    ("chime-sdk-identity", "DescribeAppInstanceAdmin"): lambda s: (
        s.identity.describe_app_instance_admin(
            AppInstanceArn=s.world.app_instance_arn, AppInstanceAdminArn=s.world.dana
        )
    ),
    ("chime-sdk-identity", "ListAppInstanceAdmins"): lambda s: s.identity.list_app_instance_admins(
        AppInstanceArn=s.world.app_instance_arn
    ),
    ("chime-sdk-identity", "DeleteAppInstanceAdmin"): lambda s: (
        s.identity.delete_app_instance_admin(
            AppInstanceArn=s.world.app_instance_arn, AppInstanceAdminArn=s.world.dana
        )
    ),
    # meetings
    ("chime-sdk-meetings", "CreateMeeting"): lambda s: s.meetings.create_meeting(
        ClientRequestToken="shape", MediaRegion="us-east-1", ExternalMeetingId="shape"
    ),
    ("chime-sdk-meetings", "CreateMeetingWithAttendees"): lambda s: (
        s.meetings.create_meeting_with_attendees(
            ClientRequestToken="shape-2",
            MediaRegion="us-east-1",
            ExternalMeetingId="shape",
            Attendees=[{"ExternalUserId": "someone"}],
        )
    ),
    ("chime-sdk-meetings", "GetMeeting"): lambda s: s.meetings.get_meeting(MeetingId=s.meeting_id),
    ("chime-sdk-meetings", "DeleteMeeting"): lambda s: s.meetings.delete_meeting(
        MeetingId=new_meeting(s.setup.meetings)["MeetingId"]
    ),
    ("chime-sdk-meetings", "CreateAttendee"): lambda s: s.meetings.create_attendee(
        MeetingId=s.meeting_id, ExternalUserId="another"
    ),
    ("chime-sdk-meetings", "BatchCreateAttendee"): lambda s: s.meetings.batch_create_attendee(
        MeetingId=s.meeting_id, Attendees=[{"ExternalUserId": "b1"}, {"ExternalUserId": "b2"}]
    ),
    ("chime-sdk-meetings", "GetAttendee"): lambda s: s.meetings.get_attendee(
        MeetingId=s.meeting_id, AttendeeId=s.attendee_id
    ),
    ("chime-sdk-meetings", "ListAttendees"): lambda s: s.meetings.list_attendees(
        MeetingId=s.meeting_id
    ),
    ("chime-sdk-meetings", "DeleteAttendee"): lambda s: s.meetings.delete_attendee(
        MeetingId=s.meeting_id, AttendeeId=s.attendee_id
    ),
    # messaging
    ("chime-sdk-messaging", "CreateChannel"): lambda s: s.messaging.create_channel(
        AppInstanceArn=s.world.app_instance_arn, Name="new", ChimeBearer=s.world.bob
    ),
    ("chime-sdk-messaging", "DescribeChannel"): lambda s: s.messaging.describe_channel(
        ChannelArn=s.channel, ChimeBearer=s.world.alice
    ),
    ("chime-sdk-messaging", "ListChannels"): lambda s: s.messaging.list_channels(
        AppInstanceArn=s.world.app_instance_arn, ChimeBearer=s.world.alice
    ),
    ("chime-sdk-messaging", "DeleteChannel"): lambda s: s.messaging.delete_channel(
        ChannelArn=new_channel(s.setup.messaging, s.world), ChimeBearer=s.world.alice
    ),
    ("chime-sdk-messaging", "CreateChannelMembership"): lambda s: (
        s.messaging.create_channel_membership(
            ChannelArn=s.channel, MemberArn=s.world.carol, Type="DEFAULT", ChimeBearer=s.world.alice
        )
    ),
    ("chime-sdk-messaging", "BatchCreateChannelMembership"): lambda s: (
        s.messaging.batch_create_channel_membership(
            ChannelArn=s.channel,
            MemberArns=[s.world.carol, s.world.user("ghost")],
            ChimeBearer=s.world.alice,
        )
    ),
    ("chime-sdk-messaging", "DescribeChannelMembership"): lambda s: (
        s.messaging.describe_channel_membership(
            ChannelArn=s.channel, MemberArn=s.world.bob, ChimeBearer=s.world.alice
        )
    ),
    ("chime-sdk-messaging", "ListChannelMemberships"): lambda s: (
        s.messaging.list_channel_memberships(ChannelArn=s.channel, ChimeBearer=s.world.alice)
    ),
    ("chime-sdk-messaging", "DeleteChannelMembership"): lambda s: (
        s.messaging.delete_channel_membership(
            ChannelArn=s.channel, MemberArn=s.world.bob, ChimeBearer=s.world.alice
        )
    ),
    ("chime-sdk-messaging", "ListChannelMembershipsForAppInstanceUser"): lambda s: (
        s.messaging.list_channel_memberships_for_app_instance_user(ChimeBearer=s.world.bob)
    ),
    ("chime-sdk-messaging", "SendChannelMessage"): lambda s: s.messaging.send_channel_message(
        ChannelArn=s.channel,
        Content="hello",
        Metadata="{}",
        Type="STANDARD",
        Persistence="PERSISTENT",
        MessageAttributes={"topic": {"StringValues": ["support"]}},
        ChimeBearer=s.world.bob,
    ),
    ("chime-sdk-messaging", "GetChannelMessage"): lambda s: s.messaging.get_channel_message(
        ChannelArn=s.channel, MessageId=s.message_id, ChimeBearer=s.world.bob
    ),
    ("chime-sdk-messaging", "ListChannelMessages"): lambda s: s.messaging.list_channel_messages(
        ChannelArn=s.channel, MaxResults=1, ChimeBearer=s.world.bob
    ),
    ("chime-sdk-messaging", "UpdateChannelMessage"): lambda s: s.messaging.update_channel_message(
        ChannelArn=s.channel, MessageId=s.message_id, Content="edited", ChimeBearer=s.world.alice
    ),
    ("chime-sdk-messaging", "DeleteChannelMessage"): lambda s: s.messaging.delete_channel_message(
        ChannelArn=s.channel, MessageId=s.spare_message(), ChimeBearer=s.world.alice
    ),
    ("chime-sdk-messaging", "RedactChannelMessage"): lambda s: s.messaging.redact_channel_message(
        ChannelArn=s.channel, MessageId=s.spare_message(), ChimeBearer=s.world.alice
    ),
    ("chime-sdk-messaging", "UpdateChannelReadMarker"): lambda s: (
        s.messaging.update_channel_read_marker(ChannelArn=s.channel, ChimeBearer=s.world.bob)
    ),
    ("chime-sdk-messaging", "GetMessagingSessionEndpoint"): lambda s: (
        s.messaging.get_messaging_session_endpoint()
    ),
}


def test_every_implemented_operation_has_a_recipe() -> None:
    implemented = set(Emulator(clock=ManualClock()).handlers)
    assert implemented == set(RECIPES)


@pytest.fixture(params=["boto3", "aiobotocore"])
def stage(
    request: pytest.FixtureRequest,
    *,
    identity: Any,
    meetings: Any,
    messaging: Any,
    aio: Clients,
    world: World,
) -> Stage:
    channel = new_channel(messaging, world, MemberArns=[world.bob])
    message_id = messaging.send_channel_message(
        ChannelArn=channel,
        Content="first",
        Metadata="{}",
        Type="STANDARD",
        Persistence="PERSISTENT",
        ChimeBearer=world.alice,
    )["MessageId"]
    meeting_id = new_meeting(meetings, MeetingHostId="host")["MeetingId"]
    attendee_id = meetings.create_attendee(MeetingId=meeting_id, ExternalUserId="first")[
        "Attendee"
    ]["AttendeeId"]
    setup = Clients(identity, meetings, messaging)
    subject = setup if request.param == "boto3" else aio
    return Stage(
        subject.identity,
        subject.meetings,
        subject.messaging,
        setup,
        world,
        channel,
        message_id,
        meeting_id,
        attendee_id,
    )


@pytest.mark.parametrize(("service", "operation"), sorted(RECIPES))
async def test_response_carries_what_the_output_shape_requires(
    stage: Stage, service: str, operation: str
) -> None:
    model = load_service_models()[service].operation_model(operation)
    response = RECIPES[(service, operation)](stage)
    if inspect.isawaitable(response):
        response = await response
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == model.http.get("responseCode", 200)
    output_shape = model.output_shape
    if output_shape is None or not output_shape.members:
        assert set(response) == {"ResponseMetadata"}
        return
    assert set(response) - {"ResponseMetadata"}, "an output shape with members, and no members"
    assert shape_problems(output_shape, response, operation) == []


def test_the_shape_check_can_fail() -> None:
    shape = load_service_models()["chime-sdk-meetings"].shape_for("AttendeeCapabilities")
    assert shape_problems(shape, {"Audio": "SendReceive", "Video": 3}, "caps") == [
        "caps.Content: required but missing",
        "caps.Video: int is not a string",
    ]
