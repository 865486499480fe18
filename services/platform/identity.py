"""The local Cognito user pool of `make run`, in the embedded moto server: the
one module that talks to Cognito (aiobotocore for the admin calls, plain HTTP
for the sign-in, as a browser does it).

    async with PoolAdmin(endpoint, region) as admin:
        pool = await admin.ensure_pool()              # find-or-create, by name
        sub = await admin.ensure_user(pool, "alice", ["admin"])
    token = await sign_in(pool, "alice")              # InitiateAuth, USER_PASSWORD_AUTH

Every call is idempotent: the pool, its app client and groups are found by name
before they are made, and `ensure_user` sets a user's groups to exactly those
asked for. The users' password is `belfry-local` (docs/sign-in.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import httpx
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from shared.auth import ADMIN, CUSTOMER, KNOWN_GROUPS, MANAGER, cognito_issuer
from shared.auth.config import public_cognito_endpoint
from shared.aws import local_credentials

POOL_NAME: Final = "belfry-local"
CLIENT_NAME: Final = "belfry-console"
PASSWORD: Final = "belfry-local"  # noqa: S105 - every local user's, documented
GROUPS: Final = (ADMIN, MANAGER, CUSTOMER)
# The people `make run` starts with, and who chats with whom (customer → manager).
SEED_USERS: Final[Mapping[str, tuple[str, ...]]] = {
    "alice": (ADMIN,),
    "mia": (MANAGER,),
    "max": (MANAGER,),
    "carl": (CUSTOMER,),
    "cora": (CUSTOMER,),
}
SEED_ASSIGNMENTS: Final = (("carl", "mia"), ("cora", "max"))
# Short: `belfry-local` passes it; moto refuses it under Cognito's default policy.
PASSWORD_POLICY: Final = {
    "MinimumLength": 8,
    "RequireUppercase": False,
    "RequireLowercase": False,
    "RequireNumbers": False,
    "RequireSymbols": False,
}
AUTH_FLOWS: Final = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
INITIATE_AUTH: Final = "AWSCognitoIdentityProviderService.InitiateAuth"


class PoolUnavailable(RuntimeError):
    """No Cognito answers at the endpoint, or it has no such pool or app client."""


class SignInFailed(RuntimeError):
    """Cognito refused the sign-in (wrong password, unknown user or client)."""


@dataclass(frozen=True)
class UserPool:
    endpoint: str  # Cognito's endpoint: the moto server locally
    region: str
    user_pool_id: str
    client_id: str  # the app client `belfry-console` (no secret)

    @property
    def issuer(self) -> str:
        return cognito_issuer(self.region, self.user_pool_id)

    @property
    def jwks_url(self) -> str:
        return f"{self.endpoint.rstrip('/')}/{self.user_pool_id}/.well-known/jwks.json"

    def service_settings(self) -> dict[str, Any]:
        """The settings that make a service accept this pool's access tokens (and
        only those), and tell browsers to sign in here (`GET /auth/config`)."""
        return {
            "auth_mode": "cognito",
            "cognito_region": self.region,
            "cognito_user_pool_id": self.user_pool_id,
            "cognito_client_ids": (self.client_id,),
            "cognito_jwks_url": self.jwks_url,
            "cognito_endpoint_url": self.endpoint,
        }


def _error_code(exc: ClientError) -> str:
    code: str = exc.response.get("Error", {}).get("Code", "")
    return code


class PoolAdmin:
    """Cognito's admin API (`cognito-idp`) at `endpoint` (None: AWS's own)."""

    def __init__(
        self,
        endpoint: str | None,
        region: str,
        *,
        timeout_seconds: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        self.endpoint = endpoint
        self.region = region
        self._config = AioConfig(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
        )
        self._context: Any = None
        self._client: Any = None

    async def __aenter__(self) -> PoolAdmin:
        self._context = get_session().create_client(  # type: ignore[call-overload]
            "cognito-idp",
            region_name=self.region,
            endpoint_url=self.endpoint,
            config=self._config,
            **local_credentials(self.endpoint),
        )
        self._client = await self._context.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._context.__aexit__(exc_type, exc, tb)
        self._client = self._context = None

    @property
    def _cognito(self) -> Any:
        if self._client is None:
            raise RuntimeError("use PoolAdmin in `async with`")
        return self._client

    def _pool(self, user_pool_id: str, client_id: str) -> UserPool:
        endpoint = self.endpoint or public_cognito_endpoint(self.region)
        # A pool id is "<region>_<id>": its region is the issuer's.
        region = user_pool_id.partition("_")[0] or self.region
        return UserPool(endpoint, region, user_pool_id, client_id)

    # --- the pool ----------------------------------------------------------

    async def _pages(self, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await getattr(self._cognito, operation)(
                **params, **({"NextToken": token} if token else {})
            )
            found += page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return found

    async def _pool_id(self, name: str) -> str | None:
        pools = await self._pages("list_user_pools", "UserPools", MaxResults=60)
        ids = sorted(p["Id"] for p in pools if p.get("Name") == name)
        return ids[0] if ids else None

    async def _client_id(self, user_pool_id: str, name: str) -> str | None:
        clients = await self._pages(
            "list_user_pool_clients", "UserPoolClients", UserPoolId=user_pool_id, MaxResults=60
        )
        ids = sorted(c["ClientId"] for c in clients if c.get("ClientName") == name)
        return ids[0] if ids else None

    async def find_pool(self, name: str = POOL_NAME, client: str = CLIENT_NAME) -> UserPool:
        """The pool called `name` and its app client `client`, or `PoolUnavailable`."""
        where = self.endpoint or f"Cognito in {self.region}"
        try:
            pool_id = await self._pool_id(name)
            if pool_id is None:
                raise PoolUnavailable(f"no user pool named {name!r} at {where}")
            client_id = await self._client_id(pool_id, client)
        except (BotoCoreError, ClientError) as exc:
            raise PoolUnavailable(f"no Cognito at {where}: {exc}") from exc
        if client_id is None:
            raise PoolUnavailable(f"user pool {pool_id} at {where} has no app client {client!r}")
        return self._pool(pool_id, client_id)

    async def ensure_pool(
        self, name: str = POOL_NAME, client: str = CLIENT_NAME, groups: Iterable[str] = GROUPS
    ) -> UserPool:
        """Find or create the pool, its app client (no secret; password sign-in) and groups."""
        pool_id = await self._pool_id(name)
        if pool_id is None:
            created = await self._cognito.create_user_pool(
                PoolName=name, Policies={"PasswordPolicy": PASSWORD_POLICY}
            )
            pool_id = created["UserPool"]["Id"]
        client_id = await self._client_id(pool_id, client)
        if client_id is None:
            made = await self._cognito.create_user_pool_client(
                UserPoolId=pool_id,
                ClientName=client,
                GenerateSecret=False,
                ExplicitAuthFlows=AUTH_FLOWS,
            )
            client_id = made["UserPoolClient"]["ClientId"]
        pool = self._pool(pool_id, client_id)
        have = await self.group_names(pool)
        for group in groups:
            if group not in have:
                await self._cognito.create_group(UserPoolId=pool_id, GroupName=group)
        return pool

    async def group_names(self, pool: UserPool) -> frozenset[str]:
        groups = await self._pages("list_groups", "Groups", UserPoolId=pool.user_pool_id, Limit=60)
        return frozenset(g["GroupName"] for g in groups)

    # --- users -------------------------------------------------------------

    async def sub_of(self, pool: UserPool, username: str) -> str | None:
        """The user's `sub` (their user id in every token), None when there is no such user."""
        try:
            user = await self._cognito.admin_get_user(
                UserPoolId=pool.user_pool_id, Username=username
            )
        except ClientError as exc:
            if _error_code(exc) == "UserNotFoundException":
                return None
            raise
        for attribute in user.get("UserAttributes", []):
            if attribute.get("Name") == "sub":
                sub: str = attribute["Value"]
                return sub
        raise PoolUnavailable(f"user {username!r} of {pool.user_pool_id} has no sub")

    async def groups_of(self, pool: UserPool, username: str) -> frozenset[str]:
        groups = await self._pages(
            "admin_list_groups_for_user",
            "Groups",
            UserPoolId=pool.user_pool_id,
            Username=username,
            Limit=60,
        )
        return frozenset(g["GroupName"] for g in groups)

    async def ensure_user(
        self,
        pool: UserPool,
        username: str,
        groups: Iterable[str],
        password: str = PASSWORD,
    ) -> str:
        """Create the user if missing, set their (permanent) password, and make their
        groups exactly `groups` (adding and removing); returns their `sub`."""
        wanted = frozenset(groups)
        unknown = wanted - KNOWN_GROUPS
        if unknown:
            known = ", ".join(sorted(KNOWN_GROUPS))
            raise ValueError(f"unknown group(s) {', '.join(sorted(unknown))}; known: {known}")
        if not username:
            raise ValueError("the username must not be empty")
        pool_id = pool.user_pool_id
        sub = await self.sub_of(pool, username)
        if sub is None:
            await self._cognito.admin_create_user(
                UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS"
            )
            sub = await self.sub_of(pool, username)
            if sub is None:
                raise PoolUnavailable(f"user {username!r} vanished from {pool_id}")
        await self._cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=username, Password=password, Permanent=True
        )
        have = await self.groups_of(pool, username)
        for group in sorted(wanted - have):
            await self._cognito.admin_add_user_to_group(
                UserPoolId=pool_id, Username=username, GroupName=group
            )
        for group in sorted(have - wanted):
            await self._cognito.admin_remove_user_from_group(
                UserPoolId=pool_id, Username=username, GroupName=group
            )
        return sub

    async def seed(
        self, pool: UserPool, users: Mapping[str, Iterable[str]] = SEED_USERS
    ) -> dict[str, str]:
        """The seeded users, each with exactly their groups: username → sub."""
        return {name: await self.ensure_user(pool, name, groups) for name, groups in users.items()}


async def sign_in(
    pool: UserPool,
    username: str,
    password: str = PASSWORD,
    *,
    http: httpx.AsyncClient | None = None,
    timeout_seconds: float = 10.0,
) -> str:
    """The user's access token: `InitiateAuth` (`USER_PASSWORD_AUTH`), unsigned, as a
    browser calls it."""
    request = {
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": pool.client_id,
        "AuthParameters": {"USERNAME": username, "PASSWORD": password},
    }
    headers = {"content-type": "application/x-amz-json-1.1", "x-amz-target": INITIATE_AUTH}
    try:
        if http is None:
            async with httpx.AsyncClient(timeout=timeout_seconds) as client:
                response = await client.post(pool.endpoint, json=request, headers=headers)
        else:
            response = await http.post(pool.endpoint, json=request, headers=headers)
    except httpx.HTTPError as exc:
        raise PoolUnavailable(f"no Cognito at {pool.endpoint}: {exc!r}") from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict):
        kind = str(body.get("__type", "")) if isinstance(body, dict) else ""
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        raise SignInFailed(
            f"{username!r} could not sign in ({response.status_code} {kind}: {message})".strip()
        )
    token = body.get("AuthenticationResult", {}).get("AccessToken")
    if not isinstance(token, str) or not token:
        challenge = body.get("ChallengeName")
        raise SignInFailed(f"{username!r} got no access token (challenge: {challenge})")
    return token
