from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.tokens.models import ApiToken, ServiceAccount
from konfig.users.models import User


async def get_service_account(
    session: AsyncSession, *, tenant_id: uuid.UUID, service_account_id: uuid.UUID
) -> ServiceAccount | None:
    query = select(ServiceAccount).where(
        ServiceAccount.id == service_account_id, ServiceAccount.tenant_id == tenant_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def get_service_account_by_name(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str
) -> ServiceAccount | None:
    query = select(ServiceAccount).where(
        ServiceAccount.tenant_id == tenant_id, ServiceAccount.name == name
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_service_accounts(
    session: AsyncSession, *, tenant_id: uuid.UUID, after: str | None, limit: int
) -> list[ServiceAccount]:
    query = (
        select(ServiceAccount)
        .where(ServiceAccount.tenant_id == tenant_id)
        .order_by(ServiceAccount.name)
        .limit(limit)
    )
    if after is not None:
        query = query.where(ServiceAccount.name > after)
    return list((await session.execute(query)).scalars())


async def add(session: AsyncSession, row: ServiceAccount | ApiToken) -> None:
    session.add(row)
    await session.flush()


async def delete_service_account(session: AsyncSession, *, account: ServiceAccount) -> None:
    await session.delete(account)
    await session.flush()


async def token_ids_of_service_account(
    session: AsyncSession, *, tenant_id: uuid.UUID, service_account_id: uuid.UUID
) -> list[uuid.UUID]:
    query = select(ApiToken.id).where(
        ApiToken.tenant_id == tenant_id, ApiToken.service_account_id == service_account_id
    )
    return list((await session.execute(query)).scalars())


async def get_token(
    session: AsyncSession, *, tenant_id: uuid.UUID, token_id: uuid.UUID
) -> ApiToken | None:
    query = select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == tenant_id)
    return (await session.execute(query)).scalar_one_or_none()


async def list_tokens(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    service_account_id: uuid.UUID | None,
    include_revoked: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[ApiToken]:
    query = (
        select(ApiToken)
        .where(ApiToken.tenant_id == tenant_id)
        .order_by(ApiToken.created_at, ApiToken.id)
        .limit(limit)
    )
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    if service_account_id is not None:
        query = query.where(ApiToken.service_account_id == service_account_id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    if after is not None:
        created_at, token_id = after
        query = query.where(
            (ApiToken.created_at > created_at)
            | ((ApiToken.created_at == created_at) & (ApiToken.id > token_id))
        )
    return list((await session.execute(query)).scalars())


async def by_hash(session: AsyncSession, *, token_hash: str) -> tuple[ApiToken, User | None] | None:
    """The token with this hash and its owning user, in whichever tenant it is.

    Runs before any tenant is known: the hash of a 256-bit secret is what identifies the tenant.
    """
    query = (
        select(ApiToken, User)
        .outerjoin(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash)
    )
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1])


async def record_usage(session: AsyncSession, *, used: Mapping[uuid.UUID, datetime]) -> None:
    """Move ``last_used_at`` forward (never back: several replicas flush independently)."""
    table = ApiToken.metadata.tables[ApiToken.__tablename__]
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("token_id"),
            or_(table.c.last_used_at.is_(None), table.c.last_used_at < bindparam("used_at")),
        )
        .values(last_used_at=bindparam("used_at"))
    )
    rows = [{"token_id": token_id, "used_at": at} for token_id, at in used.items()]
    await session.execute(statement, rows)
