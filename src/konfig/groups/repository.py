from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.groups.models import Group


async def in_tenant(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Group]:
    query = select(Group).where(Group.tenant_id == tenant_id).order_by(Group.name)
    return list((await session.execute(query)).scalars())


async def get(session: AsyncSession, *, tenant_id: uuid.UUID, group_id: uuid.UUID) -> Group | None:
    query = select(Group).where(Group.tenant_id == tenant_id, Group.id == group_id)
    return (await session.execute(query)).scalar_one_or_none()


async def add(session: AsyncSession, group: Group) -> None:
    session.add(group)
    await session.flush()


async def delete(session: AsyncSession, group: Group) -> None:
    await session.delete(group)
    await session.flush()
