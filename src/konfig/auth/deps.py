"""The dependency that turns a request's credentials into a ``Principal``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State

from konfig.audit.context import set_actor
from konfig.auth.models import AuthSession
from konfig.auth.principal import Principal
from konfig.db.session import SessionDep, bind_tenant
from konfig.errors import Unauthenticated
from konfig.ratelimit import READ_PATH_PREFIX, RateLimits
from konfig.security.jwt import InvalidToken, TokenSigner
from konfig.tokens import codec
from konfig.tokens.cache import TokenCache
from konfig.users.models import User

# Declares the scheme for OpenAPI, so Swagger's Authorize button logs in through /auth/login.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(state: State, session: AsyncSession, token: str) -> Principal:
    """The principal behind a bearer token: an API token (``kfg_…``), or a user's access token
    whose login is still open and whose user is still active.

    Shared by the API's bearer tokens and the web UI's session cookie.
    """
    if token.startswith(codec.PREFIX):
        cache: TokenCache = state.token_cache
        principal = await cache.authenticate(session, token)
        set_actor(principal.actor, principal.tenant_id)
        return principal
    signer: TokenSigner = state.signer
    try:
        claims = signer.verify(token, expected_type="access")
    except InvalidToken as exc:
        raise Unauthenticated("Invalid or expired access token") from exc
    row = (
        await session.execute(
            select(User, AuthSession)
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(User.id == claims.user_id, AuthSession.id == claims.session_id)
        )
    ).one_or_none()
    if row is None:
        raise Unauthenticated("Invalid or expired access token")
    user, auth_session = row
    if (
        not user.is_active
        or auth_session.revoked_at is not None
        or user.tenant_id != claims.tenant_id
    ):
        raise Unauthenticated("This login has ended: sign in again")
    set_actor(f"user:{user.id}", user.tenant_id)
    return Principal(
        kind="user",
        id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        is_superuser=user.is_superuser,
        session_id=auth_session.id,
        email=user.email,
    )


async def get_principal(
    request: Request,
    session: SessionDep,
    _: Annotated[str | None, Depends(oauth2_scheme)] = None,
) -> Principal:
    """Authenticate the request and bind its tenant to the transaction."""
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("Not authenticated: send 'Authorization: Bearer <token>'")
    principal = await authenticate(request.app.state, session, token)
    await bind_tenant(session, principal.tenant_id)
    return principal


async def counted_principal(
    request: Request, principal: Annotated[Principal, Depends(get_principal)]
) -> Principal:
    """The authenticated principal, named for the access log and counted against its rate
    limit (the read path against its own)."""
    # The access log line (konfig.ops.middleware) is written outside the route: scope state.
    request.state.actor = principal.actor
    request.state.tenant_id = str(principal.tenant_id)
    limits: RateLimits = request.app.state.rate_limits
    await limits.check_principal(
        actor=principal.actor, read=request.scope["path"].startswith(READ_PATH_PREFIX)
    )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(counted_principal)]
