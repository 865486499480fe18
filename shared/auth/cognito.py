"""Production: Cognito user pool access tokens, RS256, keys from the pool's JWKS;
with a `RevocationChecker`, a token the pool has revoked is refused too."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import httpx
import jwt

from .claims import DEFAULT_LEEWAY_SECONDS, decode_access_token, invalid_token
from .jwks import SIGNING_ALGORITHM, JwksCache
from .principal import Principal
from .revocation import RevocationChecker


def cognito_issuer(region: str, user_pool_id: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


class CognitoTokenVerifier:
    def __init__(
        self,
        region: str,
        user_pool_id: str,
        client_ids: Iterable[str],
        *,
        jwks_url: str | None = None,
        min_refetch_seconds: float = 60.0,
        http_timeout_seconds: float = 5.0,
        leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        revocation: RevocationChecker | None = None,
    ) -> None:
        self.revocation = revocation
        # Long-lived connections verify their token again this often (None: never).
        self.revocation_check_seconds = revocation.check_seconds if revocation else None
        self.issuer = cognito_issuer(region, user_pool_id)
        self.client_ids = frozenset(client_ids)
        if not self.client_ids:
            raise ValueError("CognitoTokenVerifier needs at least one app client id")
        self._leeway = leeway_seconds
        self.jwks = JwksCache(
            jwks_url or f"{self.issuer}/.well-known/jwks.json",
            min_refetch_seconds=min_refetch_seconds,
            timeout_seconds=http_timeout_seconds,
            http_client=http_client,
            clock=clock,
        )

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token("token is malformed") from None
        # Checked before any key lookup, so that junk tokens never trigger a JWKS fetch.
        if header.get("alg") != SIGNING_ALGORITHM:
            raise invalid_token("token signing algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token("token has no key id")
        key = await self.jwks.signing_key(kid)
        principal = decode_access_token(
            token,
            key,
            algorithm=SIGNING_ALGORITHM,
            issuer=self.issuer,
            client_ids=self.client_ids,
            leeway_seconds=self._leeway,
        )
        if self.revocation is not None:  # only for tokens that passed every local check
            await self.revocation.check(token)
        return principal
