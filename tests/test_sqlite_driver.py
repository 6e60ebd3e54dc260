"""The SQLite adapter: one trip per statement, and this process's writers served in turn."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from konfig.db import sqlite_driver
from konfig.db.engine import make_engine, make_sessionmaker
from konfig.db.session import open_session


def _no_busy_wait(engine: Any) -> None:
    """SQLite's own busy handler off: a writer that finds the lock taken fails at once."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()


async def test_statements_answer_rows_counts_and_ids(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
            inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
            assert inserted.lastrowid == 1
            await conn.execute(
                text("INSERT INTO t (name) VALUES (:name)"), [{"name": "b"}, {"name": "c"}]
            )
            changed = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
            assert changed.rowcount == 2
            rows = (await conn.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
            with pytest.raises(OperationalError, match="no such table"):
                await conn.execute(text("SELECT * FROM missing"))
    finally:
        await engine.dispose()


async def test_concurrent_writers_take_turns_instead_of_colliding(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    _no_busy_wait(engine)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))

        async def writer(n: int) -> None:
            session = await open_session(sessionmaker, write=True)
            try:
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                await asyncio.sleep(0.005)  # hold the write lock across an await
                await session.commit()
            finally:
                await session.close()

        # Without the turns, the second BEGIN IMMEDIATE fails at once: "database is locked".
        await asyncio.gather(*(writer(n) for n in range(12)))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 12
    finally:
        await engine.dispose()


async def test_a_writer_that_fails_gives_its_turn_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_driver, "WRITER_WAIT_SECONDS", 2.0)
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    sessionmaker = make_sessionmaker(engine)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER NOT NULL)"))
        failing = await open_session(sessionmaker, write=True)
        with pytest.raises(Exception, match="NOT NULL"):
            await failing.execute(text("INSERT INTO t VALUES (NULL)"))
        await failing.rollback()
        await failing.close()

        abandoned = await open_session(sessionmaker, write=True)
        await abandoned.execute(text("INSERT INTO t VALUES (1)"))
        await abandoned.close()  # closed without commit: rolled back, turn given back

        session = await open_session(sessionmaker, write=True)
        await session.execute(text("INSERT INTO t VALUES (2)"))
        await session.commit()
        await session.close()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT n FROM t"))).scalars().all() == [2]
    finally:
        await engine.dispose()


async def test_a_writer_waiting_too_long_hears_database_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_driver, "WRITER_WAIT_SECONDS", 0.2)
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    sessionmaker = make_sessionmaker(engine)
    try:
        holder = await open_session(sessionmaker, write=True)
        with pytest.raises(OperationalError, match="database is locked"):
            await open_session(sessionmaker, write=True)
        await holder.close()
        later = await open_session(sessionmaker, write=True)  # the turn is free again
        await later.close()
    finally:
        await engine.dispose()
