"""One migration chain for SQLite, PostgreSQL and MariaDB; concurrent starts migrate once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.pool import NullPool

import konfig
from konfig.app import create_app
from konfig.db.engine import make_engine
from konfig.db.migrate import head_revision, upgrade
from konfig.models import metadata
from tests.conftest import (
    PASSWORD,
    Backend,
    create_mariadb_database,
    create_pg_database,
    drop_mariadb_database,
    drop_pg_database,
    make_settings,
)


async def schema_drift(url: str) -> list[object]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()


async def test_migrations_match_the_models(backend: Backend) -> None:
    assert await schema_drift(backend.url) == []


# Each feature's models, imported alone, as a command that opens the database without the app
# does (key rotation, a backup restore): no other feature's models are loaded in that process.
_FEATURES_WITH_MODELS = sorted(
    path.parent.name for path in Path(konfig.__file__).parent.glob("*/models.py")
)
_UNTYPED_COLUMNS = """
import importlib, sys
from sqlalchemy.sql.sqltypes import NullType
importlib.import_module(sys.argv[1])
from konfig.db.base import Base
print(sorted(f"{t.name}.{c.name}" for t in Base.metadata.tables.values()
             for c in t.columns if isinstance(c.type, NullType)))
"""


@pytest.mark.parametrize("feature", _FEATURES_WITH_MODELS)
def test_a_features_models_are_typed_without_the_others(feature: str) -> None:
    """A foreign key column without a type of its own takes the referenced table's, and is
    untyped while that table is not loaded: ids come back as strings, and a value's associated
    data (its tenant and namespace ids) no longer matches the one it was encrypted with."""
    untyped = subprocess.run(
        [sys.executable, "-c", _UNTYPED_COLUMNS, f"konfig.{feature}.models"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert untyped.stdout.strip() == "[]", untyped.stdout


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
async def test_mariadb_compares_every_text_column_exactly(backend: Backend) -> None:
    """Migration 0007 made each table, and the database's default, ``utf8mb4_bin``: a key's
    case is part of it, as on PostgreSQL and SQLite (the test database is ``unicode_ci``)."""
    engine = make_engine(backend.url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            inexact = await conn.execute(
                text(
                    "SELECT table_name, column_name, collation_name FROM information_schema.columns "
                    "WHERE table_schema = DATABASE() AND collation_name IS NOT NULL "
                    "AND collation_name <> 'utf8mb4_bin' AND table_name <> 'alembic_version'"
                )
            )
            assert inexact.all() == []
            default = await conn.scalar(text("SELECT @@collation_database"))
    finally:
        await engine.dispose()
    assert default == "utf8mb4_bin"


@pytest.mark.mariadb
async def test_mariadb_migrates_and_serves(tmp_path: Path) -> None:
    name, url = await create_mariadb_database()
    try:
        await upgrade(url)
        assert await schema_drift(url) == []
        app = create_app(make_settings(url, tmp_path))
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://konfig.test"
            ) as client:
                created = await client.post(
                    "/api/v1/auth/register",
                    json={"name": "maria", "email": "o@maria.example.com", "password": PASSWORD},
                )
                assert created.status_code == 201, created.text
                tokens = (
                    await client.post(
                        "/api/v1/auth/login",
                        json={"email": "o@maria.example.com", "password": PASSWORD},
                    )
                ).json()
                me = await client.get(
                    "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
                )
                assert me.json()["email"] == "o@maria.example.com"
                assert (await client.get("/ready")).status_code == 200
                await _writes_and_reads_back(client, tokens["access_token"])
    finally:
        await drop_mariadb_database(name)


async def _writes_and_reads_back(client: httpx.AsyncClient, access_token: str) -> None:
    """The write path's bulk inserts and JSON columns on this backend, read back whole."""
    headers = {"Authorization": f"Bearer {access_token}"}
    ns = (await client.post("/api/v1/namespaces", headers=headers, json={"name": "db"})).json()
    entries = [
        {"key": "host", "value": "db.internal", "description": "primary"},
        {
            "key": "pool",
            "value": 12,
            "value_type": "number",
            "validation_schema": {"integer": True, "min_value": 1},
        },
        {"key": "password", "value": "S3cret-value", "is_secret": True},
        {"key": "flags", "value": {"a": [1, 2], "b": None}, "value_type": "json"},
    ]
    base = f"/api/v1/namespaces/{ns['id']}"
    put = await client.put(f"{base}/document", headers=headers, json={"entries": entries})
    assert put.status_code == 200, put.text
    changed = await client.put(
        f"{base}/configs/pool",
        headers=headers,
        json={
            "value": 13,
            "value_type": "number",
            "validation_schema": {"integer": True, "min_value": 1},
        },
    )
    assert changed.status_code == 200, changed.text
    document = await client.get(f"{base}/document", headers=headers, params={"reveal": "true"})
    got = {e["key"]: e for e in document.json()["entries"]}
    assert got["host"]["value"] == "db.internal" and got["host"]["description"] == "primary"
    assert got["pool"]["value"] == 13
    assert got["pool"]["validation_schema"] == {"integer": True, "min_value": 1}
    assert got["password"]["value"] == "S3cret-value" and got["password"]["is_secret"]
    assert got["flags"]["value"] == {"a": [1, 2], "b": None}
    history = await client.get(f"{base}/configs/pool/history", headers=headers)
    assert [v["value"] for v in history.json()["items"]] == [13, 12]

    # Single-entry writes sent together: group-committed through SQLAlchemy on this backend.
    answers = await asyncio.gather(
        *(
            client.put(f"{base}/configs/k{n % 4}", headers=headers, json={"value": f"v{n}"})
            for n in range(12)
        ),
        client.delete(f"{base}/configs/host", headers=headers),
    )
    assert all(a.status_code in (200, 201, 204) for a in answers), [a.text for a in answers]
    namespace = (await client.get(base, headers=headers)).json()
    assert namespace["revision"] == 2 + 13
    again = await client.put(f"{base}/configs/host", headers=headers, json={"value": "back"})
    assert again.status_code == 201
    host = await client.get(f"{base}/configs/host/history", headers=headers)
    assert [(v["version"], v["action"]) for v in host.json()["items"]] == [
        (3, "create"),
        (2, "delete"),
        (1, "create"),
    ]


def _upgrade_in_processes(
    url: str, count: int, tmp_path: Path
) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "KONFIG_DATABASE_URL": url, "KONFIG_DATA_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "konfig", "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


@pytest.mark.postgres
async def test_replicas_starting_together_migrate_once_on_postgres(tmp_path: Path) -> None:
    plain = await create_pg_database()
    try:
        results = await asyncio.to_thread(_upgrade_in_processes, plain, 3, tmp_path)
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        ran = sum("database migrated" in r.stderr for r in results)
        assert ran == 1, [r.stderr for r in results]
        engine = make_engine(
            plain.replace("postgresql://", "postgresql+asyncpg://"), poolclass=NullPool
        )
        async with engine.connect() as conn:
            versions = (
                (await conn.execute(text("SELECT version_num FROM alembic_version")))
                .scalars()
                .all()
            )
        await engine.dispose()
        assert versions == [head_revision()]
    finally:
        await drop_pg_database(plain)


async def test_replicas_starting_together_migrate_once_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    results = await asyncio.to_thread(_upgrade_in_processes, url, 3, tmp_path)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sum("database migrated" in r.stderr for r in results) == 1


def test_the_schema_known_without_alembic_is_alembics() -> None:
    """``konfig.db.schema`` reads the migrations' ids from their file names (start-up and
    ``/ready`` do without loading Alembic): they must be Alembic's own, in its order."""
    from alembic.script import ScriptDirectory

    from konfig.db import schema
    from konfig.db.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    chain = [script.revision for script in scripts.walk_revisions()]
    assert list(schema.revisions()) == chain[::-1]
    assert schema.head() == head_revision()
    assert schema.is_known(chain[-1])
    assert not schema.is_known("9999_from_a_newer_build")


async def test_at_head_tells_an_applied_schema_from_one_to_migrate(tmp_path: Path) -> None:
    from konfig.db import schema

    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    assert not await schema.at_head(url)  # nothing yet
    await upgrade(url, schema.revisions()[0])
    assert not await schema.at_head(url)
    await upgrade(url)
    assert await schema.at_head(url)


async def test_a_migrated_database_is_at_head(backend: Backend) -> None:
    from konfig.db import schema

    assert await schema.at_head(backend.url)
