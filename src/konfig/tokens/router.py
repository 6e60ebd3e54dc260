from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.openapi import error_responses
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp
from konfig.state import state_of
from konfig.tokens import service
from konfig.tokens.cache import TokenCache
from konfig.tokens.schemas import (
    ServiceAccountCreate,
    ServiceAccountRead,
    TokenCreate,
    TokenCreated,
    TokenRead,
)

service_accounts_router = APIRouter(
    prefix="/service-accounts", tags=["tokens"], route_class=GuardedRoute
)
tokens_router = APIRouter(prefix="/tokens", tags=["tokens"], route_class=GuardedRoute)


def _cache(request: Request) -> TokenCache:
    return state_of(request).token_cache


@service_accounts_router.post(
    "", response_model=ServiceAccountRead, status_code=status.HTTP_201_CREATED
)
async def create_service_account(
    session: SessionDep, principal: CurrentPrincipal, payload: ServiceAccountCreate
) -> object:
    """Create a service account, a machine identity that owns API tokens (admins)."""
    return await service.create_service_account(session, principal=principal, payload=payload)


@service_accounts_router.get("", response_model=Page[ServiceAccountRead])
async def list_service_accounts(
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ServiceAccountRead]:
    """List the tenant's service accounts by name (admins)."""
    return await service.list_service_accounts(
        session, principal=principal, cursor=cursor, limit=clamp(limit)
    )


@service_accounts_router.get("/{service_account_id}", response_model=ServiceAccountRead)
async def read_service_account(
    session: SessionDep, principal: CurrentPrincipal, service_account_id: uuid.UUID
) -> object:
    """One service account (admins)."""
    return await service.get_service_account(
        session, principal=principal, service_account_id=service_account_id
    )


@service_accounts_router.delete("/{service_account_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_service_account(
    session: SessionDep, principal: CurrentPrincipal, service_account_id: uuid.UUID
) -> None:
    """Delete a service account; its tokens stop working on every replica at once (admins)."""
    await service.delete_service_account(
        session, principal=principal, service_account_id=service_account_id
    )


@tokens_router.post(
    "",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(404),  # the service account named in the body
)
async def create_token(
    session: SessionDep, principal: CurrentPrincipal, payload: TokenCreate
) -> TokenCreated:
    """Create an API token; its secret is in this answer and never shown again."""
    token, secret = await service.create_token(session, principal=principal, payload=payload)
    rendered = service.render(token, last_used_at=None)
    return TokenCreated(**rendered.model_dump(), token=secret)


@tokens_router.get("", response_model=Page[TokenRead])
async def list_tokens(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    service_account_id: Annotated[
        uuid.UUID | None, Query(description="Only this service account's tokens")
    ] = None,
    include_revoked: Annotated[bool, Query(description="Also list revoked tokens")] = False,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[TokenRead]:
    """List tokens: all of the tenant's for admins, your own otherwise (never their secrets)."""
    tokens, next_cursor = await service.list_tokens(
        session,
        principal=principal,
        service_account_id=service_account_id,
        include_revoked=include_revoked,
        cursor=cursor,
        limit=clamp(limit),
    )
    cache = _cache(request)
    items = [service.render(t, last_used_at=cache.last_used(t.id, t.last_used_at)) for t in tokens]
    return Page[TokenRead](items=items, next_cursor=next_cursor)


@tokens_router.get("/{token_id}", response_model=TokenRead)
async def read_token(
    request: Request, session: SessionDep, principal: CurrentPrincipal, token_id: uuid.UUID
) -> TokenRead:
    """One token, with when it was last used."""
    token = await service.get_token(session, principal=principal, token_id=token_id)
    return service.render(
        token, last_used_at=_cache(request).last_used(token.id, token.last_used_at)
    )


@tokens_router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(
    session: SessionDep, principal: CurrentPrincipal, token_id: uuid.UUID
) -> None:
    """Revoke a token: every replica refuses it from now on."""
    await service.revoke_token(session, principal=principal, token_id=token_id)
