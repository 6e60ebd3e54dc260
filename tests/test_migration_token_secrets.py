"""Migration 0005: tokens that read before the ``secrets`` permission existed keep reading
secrets (on SQLite, PostgreSQL and MariaDB)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
_accounts = sa.table(
    "service_accounts",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("description", sa.String()),
    sa.column("created_by", sa.String()),
    sa.column("created_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
)
_tokens = sa.table(
    "api_tokens",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("service_account_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("token_hash", sa.String()),
    sa.column("hint", sa.String()),
    sa.column("scopes", sa.JSON()),
    sa.column("created_by", sa.String()),
    sa.column("created_at", sa.DateTime()),
)

BEFORE = {
    "reader": [{"namespaces": "payments/**", "permissions": ["read"]}],
    "writer": [
        {"namespaces": "payments/*", "permissions": ["read", "write"]},
        {"namespaces": "ci/**", "permissions": ["write"]},
    ],
}
AFTER = {
    "reader": [{"namespaces": "payments/**", "permissions": ["read", "secrets"]}],
    "writer": [
        {"namespaces": "payments/*", "permissions": ["read", "write", "secrets"]},
        {"namespaces": "ci/**", "permissions": ["write"]},
    ],
}


async def _grants_secrets_to_readers(url: str) -> None:
    await upgrade(url, "0004")
    engine = make_engine(url, poolclass=NullPool)
    now = datetime.now(UTC).replace(tzinfo=None)
    tenant_id, account_id = uuid.uuid4(), uuid.uuid4()
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(_tenants).values(
                    id=tenant_id, name="acme", created_at=now, updated_at=now
                )
            )
            await conn.execute(
                sa.insert(_accounts).values(
                    id=account_id,
                    tenant_id=tenant_id,
                    name="payments-api",
                    description="",
                    created_by="test",
                    created_at=now,
                    updated_at=now,
                )
            )
            for name, scopes in BEFORE.items():
                await conn.execute(
                    sa.insert(_tokens).values(
                        id=uuid.uuid4(),
                        tenant_id=tenant_id,
                        service_account_id=account_id,
                        name=name,
                        token_hash=uuid.uuid4().hex,
                        hint="kfg_…",
                        scopes=scopes,
                        created_by="test",
                        created_at=now,
                    )
                )
        assert await upgrade(url, "0005") == ("0004", "0005")
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(_tokens.c.name, _tokens.c.scopes))).all()
        found: dict[str, Any] = {row[0]: row[1] for row in rows}
        assert found == AFTER
    finally:
        await engine.dispose()


async def test_tokens_that_read_keep_reading_secrets_on_sqlite(tmp_path: Path) -> None:
    await _grants_secrets_to_readers(f"sqlite+aiosqlite:///{tmp_path / 'konfig.db'}")


@pytest.mark.postgres
async def test_tokens_that_read_keep_reading_secrets_on_postgres() -> None:
    plain = await create_pg_database()
    try:
        await _grants_secrets_to_readers(plain.replace("postgresql://", "postgresql+asyncpg://", 1))
    finally:
        await drop_pg_database(plain)


@pytest.mark.mariadb
async def test_tokens_that_read_keep_reading_secrets_on_mariadb() -> None:
    name, url = await create_mariadb_database()
    try:
        await _grants_secrets_to_readers(url)
    finally:
        await drop_mariadb_database(name)
