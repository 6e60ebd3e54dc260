"""`konfig db create-role` and the start-up check of the role Konfig serves as (PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from konfig.app import create_app
from konfig.db.engine import make_engine
from konfig.db.migrate import upgrade
from konfig.security.crypto import new_key_line
from konfig.settings import ConfigurationError
from tests.conftest import as_role, create_pg_database, drop_pg_database, make_settings

OWNER_PASSWORD = "owner-password-1"
APP_PASSWORD = "app-password-123"


async def konfig(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KONFIG_")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "konfig", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
async def legacy() -> AsyncIterator[tuple[str, str, str]]:
    """A database an earlier Konfig migrated as the superuser; role names of this test's own."""
    plain = await create_pg_database()
    admin = plain.replace("postgresql://", "postgresql+asyncpg://", 1)
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"konfig_owner_{suffix}", f"konfig_app_{suffix}"
    await upgrade(admin)
    try:
        yield admin, owner, app
    finally:
        await drop_pg_database(plain, roles=[app, owner])


def production(url: str, data_dir: Path) -> Any:
    return make_settings(
        url,
        data_dir,
        env="production",
        log_format="json",
        secret_key="a-production-secret-key-that-is-long-enough",
        encryption_keys=new_key_line(),
    )


async def test_create_role_makes_an_owner_and_an_app_role_production_serves_as(
    legacy: tuple[str, str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin, owner, app = legacy
    env = {"KONFIG_OWNER_PASSWORD": OWNER_PASSWORD, "KONFIG_APP_PASSWORD": APP_PASSWORD}
    for _ in range(2):  # a second run changes nothing and fails on nothing
        made = await konfig(
            "db", "create-role", "--admin-url", admin, "--owner", owner, "--app", app, **env
        )
        assert made.returncode == 0, made.stderr
    assert f"KONFIG_DATABASE_URL=postgresql://{app}:***@" in made.stderr
    assert APP_PASSWORD not in made.stdout + made.stderr
    assert OWNER_PASSWORD not in made.stdout + made.stderr
    owner_url = as_role(admin, owner, OWNER_PASSWORD)
    app_url = as_role(admin, app, APP_PASSWORD)
    superuser = make_engine(admin, poolclass=NullPool)
    try:
        async with superuser.connect() as connection:
            stored = await connection.scalars(
                text("SELECT rolpassword FROM pg_authid WHERE rolname IN (:a, :b)"),
                {"a": owner, "b": app},
            )
            # Sent and kept as SCRAM verifiers: the passwords never reached the server.
            assert [p.split("$")[0] for p in stored] == ["SCRAM-SHA-256"] * 2
    finally:
        await superuser.dispose()

    # The owner migrates (the tables an earlier Konfig made as the superuser are its own now).
    migrated = await konfig("db", "upgrade", KONFIG_MIGRATION_DATABASE_URL=owner_url)
    assert migrated.returncode == 0, migrated.stderr
    engine = make_engine(app_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            with pytest.raises(Exception, match="must be owner"):
                await connection.execute(text("ALTER TABLE users DISABLE ROW LEVEL SECURITY"))
    finally:
        await engine.dispose()

    # Production serves as the app role, and refuses the owner and the superuser.
    served = create_app(production(app_url, tmp_path / "app"))
    async with LifespanManager(served):
        pass
    for url, why in ((owner_url, f"{owner} owns"), (admin, "postgres is a superuser")):
        refused = create_app(production(url, tmp_path / "refused"))
        with pytest.raises(ConfigurationError, match=why):
            async with LifespanManager(refused):
                pass
    # Development only warns.
    with caplog.at_level(logging.WARNING, logger="konfig.db"):
        async with LifespanManager(create_app(make_settings(owner_url, tmp_path / "dev"))):
            pass
    assert any("row-level security does not hold" in r.getMessage() for r in caplog.records)


async def test_create_role_refuses_what_it_cannot_do_safely(tmp_path: Path) -> None:
    env = {"KONFIG_OWNER_PASSWORD": OWNER_PASSWORD, "KONFIG_APP_PASSWORD": "short"}
    url = "postgresql://postgres@127.0.0.1:5432/konfig"
    short = await konfig("db", "create-role", "--admin-url", url, **env)
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    env["KONFIG_APP_PASSWORD"] = APP_PASSWORD
    bad = await konfig("db", "create-role", "--admin-url", url, "--app", 'x"; DROP', **env)
    assert bad.returncode == 2 and "not a role name" in bad.stderr
    same = await konfig("db", "create-role", "--admin-url", url, "--app", "konfig_owner", **env)
    assert same.returncode == 2 and "two different roles" in same.stderr


async def test_serve_in_production_as_a_superuser_refuses_to_start(
    legacy: tuple[str, str, str], tmp_path: Path
) -> None:
    admin, _, _ = legacy
    refused = await konfig(
        "serve",
        KONFIG_ENV="production",
        KONFIG_DATABASE_URL=admin,
        KONFIG_DATA_DIR=str(tmp_path),
        KONFIG_SECRET_KEY="a-production-secret-key-that-is-long-enough",
        KONFIG_ENCRYPTION_KEYS=new_key_line(),
        KONFIG_PORT="1",  # never reached
    )
    assert refused.returncode == 1, refused.stderr
    assert "postgres is a superuser" in refused.stderr
    assert "konfig db create-role" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_a_database_out_of_reach_at_start_leaves_the_role_unchecked_not_the_server_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Konfig starts without its database and answers 503 until it is back (konfig.db.outage);
    the role check says it could not run instead of keeping the server down."""
    closed = "postgresql+asyncpg://konfig_app:x@127.0.0.1:1/konfig"
    with caplog.at_level(logging.WARNING, logger="konfig.db"):
        async with LifespanManager(create_app(production(closed, tmp_path))):
            pass
    assert any("role was not checked" in r.getMessage() for r in caplog.records)
