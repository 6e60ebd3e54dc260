"""Migration 0010: each user's tenant-wide role becomes a grant on ``**`` (on SQLite,
PostgreSQL and MariaDB)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from konfig.db.engine import make_engine
from konfig.db.migrate import upgrade
from tests.conftest import (
    create_mariadb_database,
    create_pg_database,
    drop_mariadb_database,
    drop_pg_database,
)

_tenants = sa.table(
    "tenants",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("created_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
)
_users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("email", sa.String()),
    sa.column("full_name", sa.String()),
    sa.column("password_hash", sa.String()),
    sa.column("role", sa.String()),
    sa.column("is_active", sa.Boolean()),
    sa.column("is_superuser", sa.Boolean()),
    sa.column("created_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
)
_grants = sa.table("users", sa.column("email", sa.String()), sa.column("grants", sa.JSON()))


async def _roles_become_grants(url: str) -> None:
    await upgrade(url, "0007")
    engine = make_engine(url, poolclass=NullPool)
    now = datetime.now(UTC).replace(tzinfo=None)
    tenant_id = uuid.uuid4()
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(_tenants).values(
                    id=tenant_id, name="acme", created_at=now, updated_at=now
                )
            )
            for role in ("owner", "editor", "viewer"):
                await conn.execute(
                    sa.insert(_users).values(
                        id=uuid.uuid4(),
                        tenant_id=tenant_id,
                        email=f"{role}@acme.example.com",
                        full_name="",
                        password_hash="x",
                        role=role,
                        is_active=True,
                        is_superuser=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
        await upgrade(url, "0010")
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(_grants.c.email, _grants.c.grants))).all()
        assert {str(row[0]): row[1] for row in rows} == {
            f"{role}@acme.example.com": [{"role": role, "namespaces": "**"}]
            for role in ("owner", "editor", "viewer")
        }
    finally:
        await engine.dispose()


async def test_roles_become_grants_on_everything_on_sqlite(tmp_path: Path) -> None:
    await _roles_become_grants(f"sqlite+aiosqlite:///{tmp_path / 'konfig.db'}")


@pytest.mark.postgres
async def test_roles_become_grants_on_everything_on_postgres() -> None:
    plain = await create_pg_database()
    try:
        await _roles_become_grants(plain.replace("postgresql://", "postgresql+asyncpg://", 1))
    finally:
        await drop_pg_database(plain)


@pytest.mark.mariadb
async def test_roles_become_grants_on_everything_on_mariadb() -> None:
    name, url = await create_mariadb_database()
    try:
        await _roles_become_grants(url)
    finally:
        await drop_mariadb_database(name)
