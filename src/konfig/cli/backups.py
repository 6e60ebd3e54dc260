"""``konfig backup …`` on the server: the database and the backup directory, used directly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.backups import repository
from konfig.backups import restore as restoring
from konfig.backups.schemas import BackupDetail, RestoreRequest, RestoreResult
from konfig.backups.service import Backups, list_files, take
from konfig.backups.store import BackupStore
from konfig.db.engine import make_engine, make_sessionmaker
from konfig.db.migrate import upgrade
from konfig.db.session import across_tenants, bind_tenant, open_session
from konfig.errors import NotFound
from konfig.revisions.writer import write_policy
from konfig.settings import Settings

ACTOR = "system:cli"


def backups_for(settings: Settings) -> Backups:
    """The same keyring, limits and directory the server uses."""
    return Backups(
        store=BackupStore(settings.data_dir / "backups"),
        policy=write_policy(settings),
        keep=settings.backup_keep,
    )


@asynccontextmanager
async def _transaction(
    settings: Settings, tenant: str, *, write: bool
) -> AsyncIterator[tuple[AsyncSession, uuid.UUID]]:
    """One transaction on the tenant named ``tenant``: committed if the block succeeds."""
    await upgrade(settings.resolved_migration_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        session = await open_session(make_sessionmaker(engine), write=write)
        try:
            async with across_tenants(session, "operator: a tenant by its name"):
                tenant_id = await repository.tenant_id_by_name(session, name=tenant)
            if tenant_id is None:
                raise NotFound(f"no tenant named {tenant}")
            await bind_tenant(session, tenant_id)
            yield session, tenant_id
            await session.commit()
        finally:
            await session.close()
    finally:
        await engine.dispose()


async def create(settings: Settings, *, tenant: str) -> BackupDetail:
    backups = backups_for(settings)
    async with _transaction(settings, tenant, write=False) as (session, tenant_id):
        return await take(session, backups=backups, tenant_id=tenant_id, trigger="manual")


async def list_backups(settings: Settings, *, tenant: str) -> list[BackupDetail]:
    """Every file in the tenant's backup directory, newest first, verified."""
    backups = backups_for(settings)
    return await asyncio.to_thread(list_files, backups, tenant=tenant, tenant_id=None)


async def restore(
    settings: Settings,
    *,
    tenant: str,
    backup_id: str,
    dry_run: bool,
    namespaces: list[str] | None,
) -> RestoreResult:
    backups = backups_for(settings)
    async with _transaction(settings, tenant, write=not dry_run) as (session, tenant_id):
        return await restoring.restore(
            session,
            backups=backups,
            tenant_id=tenant_id,
            tenant=tenant,
            actor=ACTOR,
            backup_id=backup_id,
            request=RestoreRequest(dry_run=dry_run, namespaces=namespaces),
            same_tenant_only=False,
        )
