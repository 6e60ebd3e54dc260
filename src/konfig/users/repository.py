from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.auth.models import AuthSession
from konfig.db.base import utcnow
from konfig.users.models import Role, User


async def get(
    session: AsyncSession, *, user_id: uuid.UUID, tenant_id: uuid.UUID | None
) -> User | None:
    """A user by id, within ``tenant_id`` (``None`` only for superusers, who see every tenant)."""
    query = select(User).where(User.id == user_id)
    if tenant_id is not None:
        query = query.where(User.tenant_id == tenant_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    query = select(User).where(func.lower(User.email) == email.lower())
    return (await session.execute(query)).scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[User]:
    query = select(User).order_by(User.created_at, User.id).limit(limit)
    if tenant_id is not None:
        query = query.where(User.tenant_id == tenant_id)
    if after is not None:
        created_at, user_id = after
        query = query.where(
            (User.created_at > created_at) | ((User.created_at == created_at) & (User.id > user_id))
        )
    return list((await session.execute(query)).scalars())


async def create(session: AsyncSession, **fields: Any) -> User:
    """A new user; given a ``role`` alone, their grants are that role on every namespace."""
    fields.setdefault("grants", [{"role": Role(fields["role"]).value, "namespaces": "**"}])
    fields.setdefault("groups", [])
    fields.setdefault("group_grants", [])
    user = User(**fields)
    session.add(user)
    await session.flush()
    return user


async def count_active_owners(session: AsyncSession, *, tenant_id: uuid.UUID) -> int:
    query = select(func.count()).where(
        User.tenant_id == tenant_id, User.role == Role.owner, User.is_active.is_(True)
    )
    return int((await session.execute(query)).scalar_one())


async def lock_owners(session: AsyncSession, *, tenant_id: uuid.UUID) -> None:
    """Serialise changes to a tenant's owners, so two demotions cannot remove the last one."""
    query = select(User.id).where(User.tenant_id == tenant_id, User.role == Role.owner)
    await session.execute(query.with_for_update())


async def delete(session: AsyncSession, *, user: User) -> None:
    await session.delete(user)
    await session.flush()


async def end_sessions(session: AsyncSession, *, user_id: uuid.UUID, reason: str) -> None:
    """Revoke every login of a user: their access and refresh tokens stop working at once."""
    query = select(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    for auth_session in (await session.execute(query)).scalars():
        auth_session.revoked_at = utcnow()
        auth_session.revoked_reason = reason
    await session.flush()


async def emails_by_id(
    session: AsyncSession, *, tenant_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    if not user_ids:
        return {}
    query = select(User.id, User.email).where(User.tenant_id == tenant_id, User.id.in_(user_ids))
    return {row.id: row.email for row in (await session.execute(query)).all()}


async def in_tenant(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[User]:
    """Every user of the tenant (groups find their members among them)."""
    query = select(User).where(User.tenant_id == tenant_id).order_by(User.email)
    return list((await session.execute(query)).scalars())
