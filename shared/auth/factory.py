"""Pick the verifier that the settings ask for; called once per process by the bootstrap."""

from __future__ import annotations

from shared.logging import get_logger
from shared.settings import BelfrySettings

from .cognito import CognitoTokenVerifier
from .config import cognito_region_of, public_cognito_endpoint
from .local import LocalTokenVerifier
from .principal import TokenVerifier
from .revocation import RevocationChecker

log = get_logger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def revocation_checker(settings: BelfrySettings, region: str) -> RevocationChecker | None:
    """GetUser at the pool's endpoint (`BELFRY_COGNITO_ENDPOINT_URL`, else Cognito's
    public one); None when `BELFRY_COGNITO_REVOCATION_CHECK_SECONDS` is 0."""
    if settings.cognito_revocation_check_seconds <= 0:
        return None
    return RevocationChecker(
        settings.cognito_endpoint_url or public_cognito_endpoint(region),
        check_seconds=settings.cognito_revocation_check_seconds,
        outage_grace_seconds=settings.cognito_revocation_outage_grace_seconds,
    )


def create_verifier(settings: BelfrySettings) -> TokenVerifier:
    if settings.auth_mode == "cognito":
        pool = settings.cognito_user_pool_id
        if not pool:
            raise ValueError("auth_mode=cognito needs BELFRY_COGNITO_USER_POOL_ID")
        # A pool id is "<region>_<id>", so the region is optional.
        region = cognito_region_of(settings)
        return CognitoTokenVerifier(
            region,
            pool,
            settings.cognito_client_ids,
            jwks_url=settings.cognito_jwks_url,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            http_timeout_seconds=settings.jwks_timeout_seconds,
            revocation=revocation_checker(settings, region),
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
