"""What a browser needs to sign in: `GET /auth/config`, public (no token, no secret).

    {"mode": "cognito", "region": "us-east-1", "user_pool_id": "us-east-1_Ab12",
     "client_id": "1example23", "endpoint": "https://cognito-idp.us-east-1.amazonaws.com/"}
    {"mode": "local"}

`endpoint` is where the browser POSTs Cognito's `InitiateAuth`
(`USER_PASSWORD_AUTH`): the embedded moto server on `make run`, Cognito's
public endpoint on AWS. `client_id` is the first of `BELFRY_COGNITO_CLIENT_IDS`:
list the browser's app client first. In local mode there is no sign-in, only
`make token` (docs/sign-in.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.settings import BelfrySettings


class AuthConfig(BaseModel):
    mode: Literal["local", "cognito"] = Field(description="`cognito`: sign in at `endpoint`.")
    region: str | None = Field(None, description="The user pool's region.")
    user_pool_id: str | None = Field(None, description="e.g. eu-west-1_AbCdEf123.")
    client_id: str | None = Field(None, description="The app client browsers sign in with.")
    endpoint: str | None = Field(
        None, description="Cognito's endpoint for InitiateAuth (POST, x-amz-json-1.1)."
    )


def cognito_region_of(settings: BelfrySettings) -> str:
    """`cognito_region`, else the pool id's ("<region>_<id>")."""
    pool = settings.cognito_user_pool_id or ""
    return settings.cognito_region or pool.partition("_")[0]


def public_cognito_endpoint(region: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/"


def auth_config(settings: BelfrySettings) -> AuthConfig:
    if settings.auth_mode != "cognito":
        return AuthConfig(mode="local")
    region = cognito_region_of(settings)
    return AuthConfig(
        mode="cognito",
        region=region,
        user_pool_id=settings.cognito_user_pool_id,
        client_id=next(iter(settings.cognito_client_ids), None),
        endpoint=settings.cognito_endpoint_url or public_cognito_endpoint(region),
    )
