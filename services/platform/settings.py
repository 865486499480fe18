"""Settings of the one-process platform (`make run`), on top of every process's."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BelfrySettings


class PlatformSettings(BelfrySettings):
    platform_local_aws_port: int = Field(
        4566,
        ge=0,
        le=65535,
        description=(
            "Port of the embedded moto server (DynamoDB, S3) when BELFRY_AWS_ENDPOINT_URL "
            "is unset; 0 picks a free one."
        ),
    )
    platform_local_chime_port: int = Field(
        9911,
        ge=0,
        le=65535,
        description=(
            "Port of the embedded Chime SDK emulator when BELFRY_CHIME_ENDPOINT_URL is "
            "unset; 0 picks a free one."
        ),
    )
    platform_embed_aws: bool = Field(
        True,
        description=(
            "Run moto in the process when BELFRY_AWS_ENDPOINT_URL is unset; false: unset "
            "means real DynamoDB and S3."
        ),
    )
    platform_embed_chime: bool = Field(
        True,
        description=(
            "Run the Chime SDK emulator in the process when BELFRY_CHIME_ENDPOINT_URL is "
            "unset; false: unset means the real Chime SDK."
        ),
    )
    platform_local_pool: bool = Field(
        True,
        description=(
            "With the embedded moto server: create the Cognito user pool `belfry-local` in it "
            "(seeded users, docs/sign-in.md) and make every service accept its tokens only "
            "(overrides BELFRY_AUTH_MODE and BELFRY_COGNITO_*); false: those settings decide."
        ),
    )
    platform_shutdown_seconds: float = Field(
        20.0,
        gt=0,
        description=(
            "Longest wait for open connections (WebSockets included) on shutdown before "
            "they are cancelled; the services then drain and flush their outboxes."
        ),
    )

    @property
    def embeds_aws(self) -> bool:
        """Whether `make run` starts moto: no endpoint configured and embedding allowed."""
        return self.aws_endpoint_url is None and self.platform_embed_aws

    @property
    def embeds_chime(self) -> bool:
        """Whether `make run` starts the Chime SDK emulator."""
        return self.chime_endpoint_url is None and self.platform_embed_chime

    @property
    def embeds_pool(self) -> bool:
        """Whether `make run` makes its own Cognito user pool (in the embedded moto)."""
        return self.embeds_aws and self.platform_local_pool
