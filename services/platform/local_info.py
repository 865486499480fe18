"""`GET /platform/info`: where the one-process platform's stand-ins are, for the
clients that drive them (`make demo` ends meetings through the Chime SDK
emulator's control API). Public, like `/auth/config`: it names endpoints, never a
secret; on real AWS both are null."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from services.platform.banner import Endpoints


class StandIn(BaseModel):
    endpoint: str | None = Field(description="Its URL; null: the real AWS service.")
    embedded: bool = Field(description="Run inside the platform's process.")


class ChimeStandIn(StandIn):
    emulator_control: str | None = Field(
        description="The Belfry Chime SDK emulator's control API (docs/emulator.md); null "
        "when the endpoint is not that emulator as far as the platform knows (real Chime)."
    )


class PlatformInfo(BaseModel):
    gateway: str = Field(description="The gateway's URL as the platform prints it.")
    aws: StandIn = Field(description="DynamoDB, S3, SQS, EventBridge (moto locally).")
    chime: ChimeStandIn = Field(description="The Chime SDK endpoint.")


def platform_info(endpoints: Endpoints) -> PlatformInfo:
    chime = endpoints.chime
    return PlatformInfo(
        gateway=endpoints.gateway,
        aws=StandIn(endpoint=endpoints.aws, embedded=endpoints.aws_embedded),
        chime=ChimeStandIn(
            endpoint=chime,
            embedded=endpoints.chime_embedded,
            # A configured endpoint (BELFRY_CHIME_ENDPOINT_URL) is the emulator locally:
            # real Chime is the unset endpoint.
            emulator_control=f"{chime.rstrip('/')}/_emulator" if chime else None,
        ),
    )


def mount_local_info(app: FastAPI, endpoints: Endpoints) -> None:
    info = platform_info(endpoints)

    async def get_platform_info() -> PlatformInfo:
        return info

    app.add_api_route(
        "/platform/info",
        get_platform_info,
        methods=["GET"],
        response_model=PlatformInfo,
        tags=["operations"],
        summary="Where the platform's stand-ins are: moto and the Chime SDK emulator",
    )
