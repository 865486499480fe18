"""What the emulator tests build on: client settings and a populated AppInstance."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
from botocore.config import Config

from emulators.chime.emulator import ChimeRequest, Emulator

# One attempt per call: the tests look at every error the emulator gives.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
REGION = "us-east-1"
ACCESS_KEY = SECRET_KEY = "testing"
CREDENTIALS = {
    "region_name": REGION,
    "aws_access_key_id": ACCESS_KEY,
    "aws_secret_access_key": SECRET_KEY,
}


def boto3_client(service: str, endpoint_url: str, config: Config = NO_RETRIES) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, config=config, **CREDENTIALS)


@dataclass
class Clients:
    """Clients of the three APIs (boto3 or aiobotocore), pointed at the emulator."""

    identity: Any
    meetings: Any
    messaging: Any


@dataclass
class World:
    """An AppInstance with users alice, bob and carol, and dana as AppInstanceAdmin."""

    app_instance_arn: str
    alice: str
    bob: str
    carol: str
    dana: str

    def user(self, name: str) -> str:
        return f"{self.app_instance_arn}/user/{name}"


def make_world(identity: Any) -> World:
    app_instance_arn = identity.create_app_instance(Name="belfry", ClientRequestToken="world")[
        "AppInstanceArn"
    ]
    users = {}
    for name in ("alice", "bob", "carol", "dana"):
        users[name] = identity.create_app_instance_user(
            AppInstanceArn=app_instance_arn,
            AppInstanceUserId=name,
            Name=name.title(),
            ClientRequestToken=f"user-{name}",
        )["AppInstanceUserArn"]
    identity.create_app_instance_admin(
        AppInstanceArn=app_instance_arn, AppInstanceAdminArn=users["dana"]
    )
    return World(app_instance_arn, **users)


def new_channel(messaging: Any, world: World, *, by: str | None = None, **extra: Any) -> str:
    """A channel created by `by` (alice by default), who becomes its member and moderator."""
    return str(
        messaging.create_channel(
            AppInstanceArn=world.app_instance_arn,
            Name=extra.pop("Name", "channel"),
            ClientRequestToken=extra.pop("ClientRequestToken", uuid.uuid4().hex),
            ChimeBearer=by or world.alice,
            **extra,
        )["ChannelArn"]
    )


def new_meeting(meetings: Any, external_id: str = "room-1", **extra: Any) -> dict[str, Any]:
    return dict(
        meetings.create_meeting(
            ClientRequestToken=extra.pop("ClientRequestToken", uuid.uuid4().hex),
            MediaRegion=extra.pop("MediaRegion", "us-east-1"),
            ExternalMeetingId=external_id,
            **extra,
        )["Meeting"]
    )


def handle_json(
    emulator: Emulator, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """One Chime API call straight into `Emulator.handle` (no HTTP, no event loop needed)."""
    raw = json.dumps(body).encode() if body is not None else b""
    headers = {"content-type": "application/json"}
    response = emulator.handle(ChimeRequest(method, path, {}, headers, raw))
    return response.status, json.loads(response.body or b"{}")
