"""Pick the verifier that the settings ask for; called once per process by the bootstrap."""

from __future__ import annotations

from shared.logging import get_logger
from shared.settings import BelfrySettings

from .cognito import CognitoTokenVerifier
from .config import cognito_region_of
from .local import LocalTokenVerifier
from .principal import TokenVerifier

log = get_logger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def create_verifier(settings: BelfrySettings) -> TokenVerifier:
    if settings.auth_mode == "cognito":
        pool = settings.cognito_user_pool_id
        if not pool:
            raise ValueError("auth_mode=cognito needs BELFRY_COGNITO_USER_POOL_ID")
        # A pool id is "<region>_<id>", so the region is optional.
        return CognitoTokenVerifier(
            cognito_region_of(settings),
            pool,
            settings.cognito_client_ids,
            jwks_url=settings.cognito_jwks_url,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            http_timeout_seconds=settings.jwks_timeout_seconds,
        )
    default_secret = BelfrySettings.model_fields["auth_local_secret"].default
    if settings.auth_local_secret == default_secret and settings.host not in LOOPBACK_HOSTS:
        # Anyone can mint tokens with the secret that ships in the repository.
        log.warning(
            "auth.local_mode.default_secret",
            host=settings.host,
            hint="set BELFRY_AUTH_MODE=cognito, or BELFRY_AUTH_LOCAL_SECRET",
        )
    return LocalTokenVerifier(
        settings.auth_local_secret.get_secret_value(),
        settings.auth_local_issuer,
        settings.auth_local_client_id,
    )
