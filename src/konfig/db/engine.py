"""Building the async engine, with the per-backend settings each database needs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from konfig.db import sqlite_driver
from konfig.db.session import WRITE_OPTION

log = logging.getLogger("konfig.db")
STATISTICS_SECONDS = 600.0  # how often a server refreshes SQLite's planner statistics


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout, foreign keys and explicit BEGINs.

    JSON columns go through orjson: a 10,000-key document writes 20,000 of them, and the
    standard library's encoder was a tenth of that write's time.
    """
    kwargs.setdefault("json_serializer", _json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("module", sqlite_driver.dbapi())  # one thread trip per statement
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _tune_sqlite(engine)
        return engine
    if backend == "postgresql" and "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    if backend in ("mysql", "mariadb"):
        # PostgreSQL's default, which the writes are made for: each statement sees what
        # committed before it. Under MariaDB's REPEATABLE READ a request that read (its
        # principal, say) before locking a namespace kept reading the state from before the
        # lock, and wrote over what another writer had committed meanwhile.
        kwargs.setdefault("isolation_level", "READ COMMITTED")
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def one_snapshot(dialect: Dialect) -> dict[str, Any]:
    """Execution options for a transaction whose reads all see one state of the database.

    PostgreSQL and MariaDB run READ COMMITTED, and are asked for REPEATABLE READ (on
    PostgreSQL at BEGIN, no extra round trip); a SQLite read transaction is one snapshot.
    """
    if dialect.name == "sqlite":
        return {}
    return {"isolation_level": "REPEATABLE READ"}


async def refresh_statistics(engine: AsyncEngine) -> None:
    """SQLite: gather the query planner's statistics (``ANALYZE``, sampling at most a thousand
    rows per index, so it costs milliseconds at any size). Without them SQLite guesses, and
    took the tenant's index for a namespace's entries: a first read scanned every entry of the
    tenant (14 ms at 10,000 namespaces instead of 0.02). PostgreSQL and MariaDB keep theirs."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA analysis_limit=1000")
        await connection.exec_driver_sql("ANALYZE")
        await connection.commit()


async def keep_statistics(engine: AsyncEngine, every: float = STATISTICS_SECONDS) -> None:
    """``refresh_statistics`` now and then, for the life of a server (SQLite only): a tenant
    that grows through the API after start-up gets the plans its size needs."""
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL and MariaDB keep their own
    while True:
        await asyncio.sleep(every)
        try:
            await refresh_statistics(engine)
        except Exception:  # the next round tries again; queries work without statistics
            log.warning("could not refresh SQLite's statistics", exc_info=True)


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads and then
        # writes fails at once (SQLITE_BUSY) instead of waiting when another writer got there.
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
