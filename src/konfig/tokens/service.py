"""Token rules: admins manage service accounts and their tokens; anyone may hold tokens of
their own no wider than their role; tokens never mint tokens."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.db.base import utcnow
from konfig.db.outbox import record_event
from konfig.db.session import record_change
from konfig.errors import Conflict, Forbidden, NotFound, ValidationFailed
from konfig.events import TokenChanged
from konfig.pagination import Page, by_text, by_time, paginate, time_of
from konfig.tokens import codec, repository
from konfig.tokens.models import ApiToken, ServiceAccount
from konfig.tokens.schemas import (
    ScopeSpec,
    ServiceAccountCreate,
    ServiceAccountRead,
    TokenCreate,
    TokenRead,
)
from konfig.users.grants import NEEDED, within
from konfig.users.models import Role


async def create_service_account(
    session: AsyncSession, *, principal: Principal, payload: ServiceAccountCreate
) -> ServiceAccount:
    principal.require(Role.admin)
    tenant_id = principal.tenant_id
    taken = await repository.get_service_account_by_name(
        session, tenant_id=tenant_id, name=payload.name
    )
    if taken is not None:
        raise Conflict(f"a service account named {payload.name} already exists")
    account = ServiceAccount(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        name=payload.name,
        description=payload.description,
        created_by=principal.actor,
    )
    try:
        await repository.add(session, account)
    except IntegrityError as exc:
        raise Conflict(f"a service account named {payload.name} already exists") from exc
    await audit.record(
        session,
        action="service_account.create",
        target_type="service_account",
        target=account.name,
        summary={"id": str(account.id)},
    )
    return account


async def get_service_account(
    session: AsyncSession, *, principal: Principal, service_account_id: uuid.UUID
) -> ServiceAccount:
    principal.require(Role.admin)
    account = await repository.get_service_account(
        session, tenant_id=principal.tenant_id, service_account_id=service_account_id
    )
    if account is None:
        raise NotFound(f"no service account {service_account_id}")
    return account


async def list_service_accounts(
    session: AsyncSession, *, principal: Principal, cursor: str | None, limit: int
) -> Page[ServiceAccountRead]:
    principal.require(Role.admin)
    found, next_cursor = await paginate(
        cursor,
        limit,
        read=by_text,
        fetch=lambda after, count: repository.list_service_accounts(
            session, tenant_id=principal.tenant_id, after=after, limit=count
        ),
        position=lambda account: [account.name],
    )
    items = [ServiceAccountRead.model_validate(a) for a in found]
    return Page[ServiceAccountRead](items=items, next_cursor=next_cursor)


async def delete_service_account(
    session: AsyncSession, *, principal: Principal, service_account_id: uuid.UUID
) -> None:
    """Delete the account and its tokens; every replica stops accepting them."""
    account = await get_service_account(
        session, principal=principal, service_account_id=service_account_id
    )
    token_ids = await repository.token_ids_of_service_account(
        session, tenant_id=account.tenant_id, service_account_id=account.id
    )
    for token_id in token_ids:
        record_change(session, TokenChanged(account.tenant_id, token_id))
    name, account_id = account.name, str(account.id)
    await repository.delete_service_account(session, account=account)
    await audit.record(
        session,
        action="service_account.delete",
        target_type="service_account",
        target=name,
        summary={"id": account_id, "tokens_ended": len(token_ids)},
    )


def _expiry(payload: TokenCreate) -> datetime | None:
    if payload.expires_in_days is not None:
        return utcnow() + timedelta(days=payload.expires_in_days)
    if payload.expires_at is not None and payload.expires_at <= utcnow():
        raise ValidationFailed("expires_at: must be in the future", {"field": "expires_at"})
    return payload.expires_at


def _no_wider_than(principal: Principal, payload: TokenCreate) -> None:
    """Nobody mints a token with a power they lack: 403 naming the permission and the pattern
    no grant of theirs covers (each use checks the user's grants again as well)."""
    if principal.is_superuser:
        return
    grants = principal.grants or ()
    for scope in payload.scopes:
        for permission in scope.permissions:
            needed = NEEDED[permission]
            if any(
                g.role.at_least(needed) and within(scope.namespaces, g.namespaces) for g in grants
            ):
                continue
            power = {"read": "read", "write": "write entries in", "secrets": "see secrets of"}
            raise Forbidden(
                f"your grants do not let you {power[permission]} {scope.namespaces}, so your "
                f"tokens cannot either: leave out the {permission} permission or narrow the "
                "pattern",
                {"permission": permission, "namespaces": scope.namespaces},
            )


async def create_token(
    session: AsyncSession, *, principal: Principal, payload: TokenCreate
) -> tuple[ApiToken, str]:
    """A new token and its secret, which is returned this once and stored only as a hash."""
    principal.require_user()
    if payload.service_account_id is not None:
        account = await get_service_account(
            session, principal=principal, service_account_id=payload.service_account_id
        )
        owner: dict[str, uuid.UUID | None] = {"service_account_id": account.id, "user_id": None}
    else:
        _no_wider_than(principal, payload)
        owner = {"service_account_id": None, "user_id": principal.id}
    secret = codec.generate()
    token = ApiToken(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        name=payload.name,
        token_hash=codec.token_hash(secret),
        hint=codec.hint(secret),
        scopes=[s.model_dump() for s in payload.scopes],
        expires_at=_expiry(payload),
        created_at=utcnow(),
        created_by=principal.actor,
        **owner,
    )
    await repository.add(session, token)
    await audit.record(
        session,
        action="token.create",
        target_type="token",
        target=token.name,
        summary=_token_summary(token),
    )
    return token, secret


def _token_summary(token: ApiToken) -> dict[str, object]:
    """What the audit log says about a token: never its secret, its hash or its hint."""
    return {
        "id": str(token.id),
        "owner": f"service_account:{token.service_account_id}"
        if token.service_account_id
        else f"user:{token.user_id}",
        "scopes": token.scopes,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    }


async def get_token(
    session: AsyncSession, *, principal: Principal, token_id: uuid.UUID
) -> ApiToken:
    """A token the caller may manage: any of the tenant's for admins, their own for others."""
    principal.require_user()
    token = await repository.get_token(session, tenant_id=principal.tenant_id, token_id=token_id)
    admin = principal.is_superuser or principal.role.at_least(Role.admin)
    if token is None or not (admin or token.user_id == principal.id):
        raise NotFound(f"no token {token_id}")
    return token


async def list_tokens(
    session: AsyncSession,
    *,
    principal: Principal,
    service_account_id: uuid.UUID | None,
    include_revoked: bool,
    cursor: str | None,
    limit: int,
) -> tuple[list[ApiToken], str | None]:
    principal.require_user()
    admin = principal.is_superuser or principal.role.at_least(Role.admin)
    return await paginate(
        cursor,
        limit,
        read=by_time,
        fetch=lambda after, count: repository.list_tokens(
            session,
            tenant_id=principal.tenant_id,
            user_id=None if admin else principal.id,
            service_account_id=service_account_id,
            include_revoked=include_revoked,
            after=after,
            limit=count,
        ),
        position=time_of,
    )


async def revoke_token(session: AsyncSession, *, principal: Principal, token_id: uuid.UUID) -> None:
    """Revoke a token; every replica refuses it from the moment this commits."""
    token = await get_token(session, principal=principal, token_id=token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
        await audit.record(
            session,
            action="token.revoke",
            target_type="token",
            target=token.name,
            summary=_token_summary(token),
        )
        await record_event(
            session,
            tenant_id=token.tenant_id,
            type="token.revoked",
            data={"token_id": str(token.id), "name": token.name, "actor": principal.actor},
        )
    record_change(session, TokenChanged(token.tenant_id, token.id))


def render(token: ApiToken, *, last_used_at: datetime | None) -> TokenRead:
    now = utcnow()
    if token.revoked_at is not None:
        status = "revoked"
    elif token.expires_at is not None and token.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return TokenRead(
        id=token.id,
        name=token.name,
        hint=token.hint,
        owner="service_account" if token.service_account_id else "user",
        service_account_id=token.service_account_id,
        user_id=token.user_id,
        scopes=[ScopeSpec.model_validate(s) for s in token.scopes],
        status=status,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=last_used_at,
        created_at=token.created_at,
        created_by=token.created_by,
    )
