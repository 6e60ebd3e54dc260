"""SQLAlchemy's aiosqlite adapter, with every statement run in one trip to SQLite's thread.

aiosqlite runs each SQLite call on a thread of its own and hands the answer back to the event
loop. SQLAlchemy's adapter makes four such trips per statement (open a cursor, execute, fetch,
close), and each costs a thread wake-up and a loop wake-up: about 450 us per statement here,
against about 50 us for one trip. This cursor makes one trip: it executes, fetches every row
and closes on SQLite's thread, and keeps the description, row count and last row id for
SQLAlchemy to read afterwards. Everything else (connections, transactions, server-side cursors,
error translation) is SQLAlchemy's own adapter, unchanged.

It also queues this process's writers. A writer's transaction starts with ``BEGIN
IMMEDIATE``; when another connection holds the write lock, SQLite's busy handler makes it sleep
and retry (1, 2, 5, 10 … 100 ms), so eight concurrent writers spent most of their time asleep.
Here a writer first waits its turn on an ``asyncio.Lock`` shared by the engine's connections,
taken before ``BEGIN IMMEDIATE`` and given back when the transaction ends, and the busy handler
is only left to arbitrate between processes.

Used through ``make_engine``, which passes ``dbapi()`` as the engine's DBAPI ``module``.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, list[Any], int, int | None]
_BEGIN_WRITE = "BEGIN IMMEDIATE"
# As long as SQLite's busy timeout (engine.py): then "database is locked", as SQLite would say.
WRITER_WAIT_SECONDS = 30.0


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On SQLite's thread: the whole statement, from cursor to close."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose ``execute`` is a single call on aiosqlite's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no cursor to open up front
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None  # nothing is left open on SQLite's side

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._one_trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            return await_(self._one_trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapted = cast(OneTripConnection, self._adapt_connection)
        connection = cast(aiosqlite.Connection, self._connection)
        if operation == _BEGIN_WRITE:
            await adapted.take_write_turn()
        async with adapted._execute_mutex:
            outcome: _Outcome = await connection._execute(  # type: ignore[no-untyped-call]
                _run, connection._conn, operation, parameters, many
            )
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    def nextset(self) -> None:
        return None


# One statement of a script: SQL, parameters, and whether they are many rows (executemany).
Statement = tuple[str, Sequence[Any], bool]


def _run_script(conn: sqlite3.Connection, statements: Sequence[Statement]) -> list[list[Any]]:
    """On SQLite's thread: every statement in turn, and the rows each returned."""
    answers: list[list[Any]] = []
    for operation, parameters, many in statements:
        cursor = conn.cursor()
        try:
            if many:
                cursor.executemany(operation, parameters)
            else:
                cursor.execute(operation, parameters)
            answers.append(cursor.fetchall() if cursor.description else [])
        finally:
            cursor.close()
    return answers


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_writing",)
    _cursor_cls = OneTripCursor
    dbapi: OneTripDBAPI

    def __init__(self, dbapi: OneTripDBAPI, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._writing = False

    async def take_write_turn(self) -> None:
        if self._writing:
            return
        writers = self.dbapi.writers
        if writers.locked():
            try:
                await asyncio.wait_for(writers.acquire(), WRITER_WAIT_SECONDS)
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked") from None
        else:  # nobody's turn: taken at once, without a timer
            await writers.acquire()
        self._writing = True

    async def script(self, statements: Sequence[Statement]) -> list[list[Any]]:
        """Run several statements in one trip to SQLite's thread; answers each one's rows.

        For a caller that drives its own transaction on this connection: a script starting with
        ``BEGIN IMMEDIATE`` waits for this process's write turn first, and the turn is given back
        as soon as no transaction is left open (after its ``COMMIT`` or ``ROLLBACK``, or a
        ``BEGIN`` that failed).
        """
        if statements and statements[0][0] == _BEGIN_WRITE:
            await self.take_write_turn()
        connection = cast(aiosqlite.Connection, self._connection)
        try:
            async with self._execute_mutex:
                answers: list[list[Any]] = await connection._execute(  # type: ignore[no-untyped-call]
                    _run_script, connection._conn, statements
                )
        finally:
            if not connection._conn.in_transaction:
                self._end_write_turn()
        return answers

    def _end_write_turn(self) -> None:
        if self._writing:
            self._writing = False
            self.dbapi.writers.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._end_write_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._end_write_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._end_write_turn()

    def terminate(self) -> None:
        try:
            super().terminate()
        finally:
            self._end_write_turn()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self, aiosqlite: Any, sqlite: Any) -> None:
        super().__init__(aiosqlite, sqlite)
        self.writers = asyncio.Lock()  # one per engine: this process's writers, in turn

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    return OneTripDBAPI(aiosqlite, sqlite3)
