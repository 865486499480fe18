"""Where a meeting's media is: Chime's media regions and the MediaPlacement URLs."""

from __future__ import annotations

from botocore.model import StructureShape

from emulators.chime.calls import Output
from emulators.chime.routing import load_service_models

MEDIA_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ca-central-1",
        "eu-central-1",
        "eu-north-1",
        "eu-south-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "us-gov-east-1",
        "us-gov-west-1",
    }
)

_PLACEMENT_TEMPLATES = {
    "AudioHostUrl": "{hex}.k.m3.{code}.app.chime.aws:3478",
    "AudioFallbackUrl": "wss://haxrp.m3.{code}.app.chime.aws:443/calls/{id}",
    "SignalingUrl": "wss://signal.m3.{code}.app.chime.aws/control/{id}",
    "TurnControlUrl": "https://2713.cell.{region}.meetings.chime.aws/v2/turn_sessions",
    "ScreenDataUrl": "wss://bitpw.m3.{code}.app.chime.aws:443/v2/screen/{id}",
    "ScreenViewingUrl": (
        "wss://bitpw.m3.{code}.app.chime.aws:443/ws/connect"
        "?passcode=null&viewer_uuid=null&X-BitHub-Call-Id={id}"
    ),
    "ScreenSharingUrl": "wss://bitpw.m3.{code}.app.chime.aws:443/v2/screen/{id}",
    "EventIngestionUrl": "https://data.svc.{code}.ingest.chime.aws/v1/client-events",
}


def _region_code(region: str) -> str:
    """us-east-1 -> ue1, eu-central-1 -> ec1, us-gov-west-1 -> ugw1 (Chime's host names)."""
    *words, number = region.split("-")
    return "".join(word[0] for word in words) + number


def media_placement(meeting_id: str, region: str) -> Output:
    """A URL for every member that the model's MediaPlacement shape has."""
    shape = load_service_models()["chime-sdk-meetings"].shape_for("MediaPlacement")
    assert isinstance(shape, StructureShape)
    values = {"id": meeting_id, "code": _region_code(region), "region": region}
    values["hex"] = meeting_id.replace("-", "")[:32]
    placement = {}
    for name in shape.members:
        template = _PLACEMENT_TEMPLATES.get(name, "https://{member}.m3.{code}.app.chime.aws/{id}")
        placement[name] = template.format(member=name.lower(), **values)
    return placement
