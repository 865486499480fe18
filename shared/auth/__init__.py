"""JWT verification: Cognito access tokens in production, HS256 look-alikes locally.

    verifier = create_verifier(settings)         # once, in the bootstrap
    app.state.verifier = verifier

    @router.get("/me")
    async def me(user: CurrentUser) -> ...       # or AdminUser, require_groups(...)

`GET /auth/config` (`auth_config`) tells browsers where to sign in. A WebSocket
ends with its token (`SessionAuth`: closed at `exp` unless renewed by an auth
frame; re-checked against Cognito for revocation, `RevocationChecker`). Tokens for a
`make run`: `make token SUB=alice GROUPS=admin` (its Cognito user pool); local
HS256 tokens: `python -m shared.auth token --sub alice --groups admin`
(docs/sign-in.md).
"""

from .claims import decode_access_token, valid_sub
from .cognito import CognitoTokenVerifier, cognito_issuer
from .config import AuthConfig, auth_config
from .dependencies import (
    AdminUser,
    CurrentUser,
    ManagerUser,
    StaffUser,
    auth_frame_token,
    authenticate_websocket,
    bearer_token,
    current_principal,
    require_groups,
    websocket_credentials,
)
from .factory import create_verifier
from .jwks import JwksCache
from .local import LocalTokenVerifier, mint_local_token
from .principal import ADMIN, CUSTOMER, KNOWN_GROUPS, MANAGER, Principal, TokenVerifier
from .revocation import RevocationChecker
from .sessions import SessionAuth

__all__ = [
    "ADMIN",
    "CUSTOMER",
    "KNOWN_GROUPS",
    "MANAGER",
    "AdminUser",
    "AuthConfig",
    "CognitoTokenVerifier",
    "CurrentUser",
    "JwksCache",
    "LocalTokenVerifier",
    "ManagerUser",
    "Principal",
    "RevocationChecker",
    "SessionAuth",
    "StaffUser",
    "TokenVerifier",
    "auth_config",
    "auth_frame_token",
    "authenticate_websocket",
    "bearer_token",
    "cognito_issuer",
    "create_verifier",
    "current_principal",
    "decode_access_token",
    "mint_local_token",
    "require_groups",
    "valid_sub",
    "websocket_credentials",
]
