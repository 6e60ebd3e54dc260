"""Applying Alembic migrations, under a lock so replicas starting together migrate once."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from konfig.db.engine import make_engine, sqlite_path

log = logging.getLogger("konfig.migrate")

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x6B6F6E666967  # "konfig"
_LOCK_NAME = "konfig_migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@lru_cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def is_known(revision: str) -> bool:
    """Whether this build has the migration ``revision`` (a newer build's are unknown to it)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown or malformed id
        return False


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextlib.asynccontextmanager
async def _migration_lock(connection: AsyncConnection, url: str) -> AsyncIterator[None]:
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
        await connection.commit()
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
            await connection.commit()
    elif backend in ("mysql", "mariadb"):
        got = await connection.scalar(text("SELECT GET_LOCK(:name, 600)"), {"name": _LOCK_NAME})
        if got != 1:
            raise RuntimeError("timed out waiting for another process's migrations")
        try:
            yield
        finally:
            await connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _LOCK_NAME})
    else:
        path = sqlite_path(url)
        if path is None:
            yield
            return
        fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _upgrade(connection: Connection, revision: str) -> tuple[str | None, str | None]:
    before = current_revision(connection)
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    return before, current_revision(connection)


async def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database to ``revision``; returns the revisions before and after."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            async with _migration_lock(connection, url):
                before, after = await connection.run_sync(_upgrade, revision)
                await connection.commit()
    finally:
        await engine.dispose()
    if before != after:
        log.info("database migrated from %s to %s", before or "empty", after)
    return before, after
