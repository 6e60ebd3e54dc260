"""The dependency that turns a request's credentials into a ``Principal``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Scope

from konfig.audit.context import set_actor
from konfig.auth.models import AuthSession
from konfig.auth.principal import Principal
from konfig.db.session import SessionDep, bind_tenant
from konfig.errors import Unauthenticated
from konfig.paths import READ_PATH_PREFIX
from konfig.security.jwt import InvalidToken
from konfig.state import AppState, state_of
from konfig.tokens import codec
from konfig.users.grants import parse_grants
from konfig.users.models import User

# Declares the scheme for OpenAPI, so Swagger's Authorize button logs in through /auth/login.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


NOT_AUTHENTICATED = "Not authenticated: send 'Authorization: Bearer <token>'"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def known_principal(state: AppState, token: str) -> Principal | None:
    """The principal behind a token this process's caches know, with no database work; None
    for a token they do not know. A known token that must be refused raises 401."""
    principal: Principal | None
    if token.startswith(codec.PREFIX):
        tokens = state.token_cache
        record = tokens.lookup(token)
        principal = None if record is None else tokens.admit(record)
    else:
        logins = state.login_cache
        principal = logins.lookup(token)
    if principal is not None:
        set_actor(principal.actor, principal.tenant_id)
    return principal


async def authenticate(state: AppState, session: AsyncSession, token: str) -> Principal:
    """The principal behind a bearer token: an API token (``kfg_…``), or a user's access token
    whose login is still open and whose user is still active.

    Both are answered from this process's caches when they know the token; ``session`` is only
    used (and its transaction begun) when they do not. Shared by the API's bearer tokens, the
    read path and the web UI's session cookie.
    """
    known = known_principal(state, token)
    if known is not None:
        return known
    if token.startswith(codec.PREFIX):
        cache = state.token_cache
        principal = cache.admit(await cache.load(session, token))
        set_actor(principal.actor, principal.tenant_id)
        return principal
    logins = state.login_cache
    generation = logins.generation
    try:
        claims = state.signer.verify(token, expected_type="access")
    except InvalidToken as exc:
        raise Unauthenticated("Invalid or expired access token") from exc
    await bind_tenant(session, claims.tenant_id)  # signed: the login's rows are this tenant's
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
    principal = Principal(
        kind="user",
        id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        is_superuser=user.is_superuser,
        session_id=auth_session.id,
        email=user.email,
        grants=parse_grants(user.all_grants()),
    )
    logins.remember(
        token, principal, expires_at=claims.expires_at.timestamp(), generation=generation
    )
    return principal


async def admit(
    state: AppState, scope: Scope, session: AsyncSession, authorization: str | None
) -> Principal:
    """Authenticate a request, bind its tenant to the transaction, and count it
    (``count_request``)."""
    token = bearer_token(authorization)
    if token is None:
        raise Unauthenticated(NOT_AUTHENTICATED)
    principal = await authenticate(state, session, token)
    await bind_tenant(session, principal.tenant_id)
    await count_request(state, scope, principal)
    return principal


def name_in_access_log(scope: Scope, actor: str, tenant_id: uuid.UUID | str) -> None:
    """The access log line (``konfig.ops.middleware``) is written outside the route: it finds
    who asked in the request's scope state (``tenant_id`` may come as the string it writes)."""
    request_state = scope.setdefault("state", {})
    request_state["actor"] = actor
    request_state["tenant_id"] = tenant_id if isinstance(tenant_id, str) else str(tenant_id)


async def count_request(state: AppState, scope: Scope, principal: Principal) -> None:
    """Name the principal for the access log and count the request against its rate limit (the
    read path against its own)."""
    name_in_access_log(scope, principal.actor, principal.tenant_id)
    await state.rate_limits.check_principal(
        actor=principal.actor, read=scope["path"].startswith(READ_PATH_PREFIX)
    )


async def current_principal(
    request: Request,
    session: SessionDep,
    _: Annotated[str | None, Depends(oauth2_scheme)] = None,
) -> Principal:
    """The authenticated principal of the request."""
    return await admit(
        state_of(request), request.scope, session, request.headers.get("authorization")
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
