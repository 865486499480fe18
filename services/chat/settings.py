"""chat's settings: the AppInstance, its own service user, attachments and limits."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BelfrySettings

DEFAULT_CONTENT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)


class ChatSettings(BelfrySettings):
    chat_app_instance_arn: str | None = Field(
        None,
        description="The Chime AppInstance of the chat; unset: find the one named "
        "`BELFRY_CHAT_APP_INSTANCE_NAME` or create it on start-up.",
    )
    chat_app_instance_name: str = Field(
        "belfry", min_length=1, max_length=100, description="AppInstance looked up or created."
    )
    chat_service_user_id: str = Field(
        "belfry-chat-service",
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$",
        description="chat's own AppInstanceUser (made AppInstanceAdmin on start-up); "
        "it creates channels and manages memberships.",
    )
    chat_attachments_bucket: str = Field(
        "belfry-attachments",
        min_length=3,
        max_length=63,
        description="S3 bucket of attachments; created on start-up if missing.",
    )
    chat_max_attachment_bytes: int = Field(
        25 * 1024 * 1024, ge=1, description="Largest attachment accepted (413 above)."
    )
    chat_allowed_content_types: tuple[str, ...] = Field(
        DEFAULT_CONTENT_TYPES,
        description='Attachment content types accepted (415 otherwise), as JSON: ["image/png"].',
    )
    chat_s3_public_endpoint_url: str | None = Field(
        None,
        description="The S3 endpoint that presigned attachment URLs (downloads and upload "
        "forms) name, for clients that cannot reach `BELFRY_AWS_ENDPOINT_URL` (compose: "
        "moto's published port on the host); the URLs are signed for it. Unset: the endpoint "
        "chat itself talks to.",
    )
    chat_download_url_seconds: int = Field(
        300, ge=1, le=3600, description="Lifetime of a presigned attachment download URL."
    )
    chat_upload_url_seconds: int = Field(
        300, ge=1, le=3600, description="Lifetime of a presigned-POST attachment upload."
    )
    chat_max_content_bytes: int = Field(
        4096, ge=1, le=4096, description="Longest message content, UTF-8 bytes (Chime: 4 KB)."
    )
    chat_max_mentions: int = Field(20, ge=0, le=50, description="Mentions per message.")
    chat_max_attachments: int = Field(10, ge=0, le=20, description="Attachments per message.")
    chat_edit_window_seconds: int = Field(
        900,
        ge=1,
        le=7 * 86400,
        description="How long after posting its sender may edit a message (409 "
        "`edit_window_closed` after). Deleting has no window.",
    )
    chat_page_size: int = Field(50, ge=1, le=200, description="Messages and channels per page.")
    chat_unattached_retention_seconds: int = Field(
        86400,
        ge=60,
        description="Uploads never attached to a message are deleted (S3 and index) this long "
        "after the upload.",
    )
    chat_sweep_interval_seconds: float = Field(
        600, gt=0, description="How often each replica looks for such uploads."
    )
    chat_role_cache_seconds: float = Field(
        30,
        ge=0,
        description="How long chat keeps the user pool's answer on a person's groups "
        "(AdminListGroupsForUser) for assignments and promotions (cognito mode).",
    )
    chat_role_sweep_interval_seconds: float = Field(
        300,
        gt=0,
        description="How often each replica re-checks every recorded manager in the user pool "
        "and ends the memberships of those who lost the role (cognito mode).",
    )
