from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.db.base import utcnow
from konfig.sso.models import SsoConfig, SsoFlow


async def get_config(session: AsyncSession, *, tenant_id: uuid.UUID) -> SsoConfig | None:
    query = select(SsoConfig).where(SsoConfig.tenant_id == tenant_id)
    return (await session.execute(query)).scalar_one_or_none()


async def add(session: AsyncSession, row: SsoConfig | SsoFlow) -> None:
    session.add(row)
    await session.flush()


async def flow_by_state(session: AsyncSession, *, state_hash: str) -> SsoFlow | None:
    """The sign-in a callback's ``state`` names, locked until the transaction ends (two copies
    of one callback: the second waits, then finds it spent)."""
    query = select(SsoFlow).where(SsoFlow.state_hash == state_hash).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def forget_old_flows(session: AsyncSession, *, tenant_id: uuid.UUID) -> None:
    """Sign-ins that expired are of no more use, spent or not."""
    await session.execute(
        delete(SsoFlow).where(SsoFlow.tenant_id == tenant_id, SsoFlow.expires_at < utcnow())
    )
