"""An in-memory cache of a JSON Web Key Set with a rate-limited refetch on unknown `kid`.

PyJWT's `PyJWKClient` refetches on every unknown `kid` and with blocking I/O;
this cache fetches with httpx's async client, at most once per
`min_refetch_seconds`, and concurrent callers waiting on the same unknown key
share one fetch. A failed fetch keeps the keys we had.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

import httpx
import jwt

from shared.errors import ServiceUnavailable
from shared.logging import get_logger

from .claims import invalid_token

log = get_logger(__name__)

SIGNING_ALGORITHM: Final = "RS256"
# After a failed fetch, try again sooner than the refetch window: we got nothing.
FAILED_FETCH_RETRY_SECONDS: Final = 5.0


class JwksCache:
    def __init__(
        self,
        url: str,
        *,
        min_refetch_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._min_refetch = min_refetch_seconds
        self._timeout = timeout_seconds
        self._http = http_client  # owned by the caller; None: one short-lived client per fetch
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._next_fetch_at: float | None = None
        self._last_fetch_failed = False

    async def signing_key(self, kid: str) -> Any:
        """The public key for `kid`, fetching the key set when it is unknown and allowed."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)  # another caller may have fetched it meanwhile
            if key is None and self._may_fetch():
                await self._fetch()
                key = self._keys.get(kid)
        if key is not None:
            return key
        if self._last_fetch_failed:
            raise ServiceUnavailable("cannot verify the token right now", retry_after_seconds=5)
        raise invalid_token("token was signed with an unknown key")

    def _may_fetch(self) -> bool:
        return self._next_fetch_at is None or self._clock() >= self._next_fetch_at

    async def _fetch(self) -> None:
        started = self._clock()
        try:
            keys = parse_jwks(await self._get())
        except (httpx.HTTPError, ValueError) as exc:
            self._last_fetch_failed = True
            self._next_fetch_at = started + min(self._min_refetch, FAILED_FETCH_RETRY_SECONDS)
            log.warning("auth.jwks.fetch_failed", url=self.url, error=repr(exc))
            return
        self._keys = keys
        self._last_fetch_failed = False
        self._next_fetch_at = started + self._min_refetch
        log.info("auth.jwks.fetched", url=self.url, kids=sorted(keys))

    async def _get(self) -> Any:
        if self._http is not None:
            response = await self._http.get(self.url, timeout=self._timeout)
        else:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self.url)
        response.raise_for_status()
        return response.json()


def parse_jwks(document: Any) -> dict[str, Any]:
    """kid → RSA public key for every usable signing key; ValueError when there is none."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        # Only RSA signing keys: a symmetric ("oct") key here must never become an HMAC key.
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", SIGNING_ALGORITHM) != SIGNING_ALGORITHM:
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=SIGNING_ALGORITHM).key
        except jwt.PyJWTError:
            continue
    if not keys:
        raise ValueError("JWKS document has no usable RS256 signing key")
    return keys
