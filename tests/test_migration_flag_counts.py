"""Migration 0014: flag evaluation counts move from ``flag_evaluations`` into the usage
analytics' ``analytics_flag_evaluations`` as hour rows, and back on a downgrade (on SQLite,
PostgreSQL and MariaDB)."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from konfig.db.engine import make_engine
from konfig.db.migrate import alembic_config, upgrade
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
_COLUMNS = ("id", "tenant_id", "namespace", "flag", "variant", "actor")
_old = sa.table(
    "flag_evaluations",
    *(sa.column(name, sa.Uuid() if name.endswith("id") else sa.String()) for name in _COLUMNS),
    sa.column("hour", sa.DateTime()),
    sa.column("count", sa.BigInteger()),
)
_new = sa.table(
    "analytics_flag_evaluations",
    *(sa.column(name, sa.Uuid() if name.endswith("id") else sa.String()) for name in _COLUMNS),
    sa.column("start", sa.DateTime()),
    sa.column("span", sa.Integer()),
    sa.column("count", sa.BigInteger()),
)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def _counts_move_into_analytics(url: str) -> None:
    await upgrade(url, "0013")
    engine = make_engine(url, poolclass=NullPool)
    now = datetime(2026, 12, 7, 14, 0, 0)  # naive: the columns hold UTC
    tenant_id = uuid.uuid4()
    counted = {("beta", "on"): 7, ("beta", "off"): 5, ("kill", "off"): 1}
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(_tenants).values(
                    id=tenant_id, name="acme", created_at=now, updated_at=now
                )
            )
            for (flag, variant), number in counted.items():
                await conn.execute(
                    sa.insert(_old).values(
                        id=uuid.uuid4(),
                        tenant_id=tenant_id,
                        namespace="web/production",
                        flag=flag,
                        variant=variant,
                        actor="token:t1",
                        hour=now,
                        count=number,
                    )
                )
        await upgrade(url, "0014")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        _new.c.tenant_id,
                        _new.c.flag,
                        _new.c.variant,
                        _new.c.actor,
                        _new.c.start,
                        _new.c.span,
                        _new.c.count,
                    )
                )
            ).all()
            tables = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert "flag_evaluations" not in tables
        assert {(flag, variant): number for _, flag, variant, *_, number in rows} == counted
        assert {(row[0], row[3], row[5]) for row in rows} == {(tenant_id, "token:t1", 3600)}
        assert {row[4].replace(tzinfo=None) for row in rows} == {now}
        async with engine.connect() as conn:
            await conn.run_sync(_downgrade, "0013")
            await conn.commit()
        async with engine.connect() as conn:
            back = (await conn.execute(sa.select(_old.c.flag, _old.c.variant, _old.c.count))).all()
        assert {(flag, variant): number for flag, variant, number in back} == counted
    finally:
        await engine.dispose()


async def test_counts_move_into_analytics_on_sqlite(tmp_path: Path) -> None:
    await _counts_move_into_analytics(f"sqlite+aiosqlite:///{tmp_path / 'konfig.db'}")


@pytest.mark.postgres
async def test_counts_move_into_analytics_on_postgres() -> None:
    plain = await create_pg_database()
    try:
        await _counts_move_into_analytics(
            plain.replace("postgresql://", "postgresql+asyncpg://", 1)
        )
    finally:
        await drop_pg_database(plain)


@pytest.mark.mariadb
async def test_counts_move_into_analytics_on_mariadb() -> None:
    name, url = await create_mariadb_database()
    try:
        await _counts_move_into_analytics(url)
    finally:
        await drop_mariadb_database(name)
