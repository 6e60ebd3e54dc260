"""Inserting thousands of complete rows at once, for the writes that do (documents, imports).

SQLAlchemy's executemany builds every row's parameters through its generic machinery and runs
each value through its type's processor; for the 20,000 rows of a 10,000-key document that was
about half the write. Here the statement is compiled once per dialect, the processors are
looked up once per column, a value every row shares (tenant, namespace, revision, time, actor)
is converted once, and the driver gets plain tuples: the same values SQLAlchemy would send,
with the per-row work cut to what differs between rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

_Processor = Callable[[Any], Any] | None
# Where the driver takes exactly what the type processors give (aiomysql escapes values itself
# and refuses some of them): the two backends Konfig runs on in production.
_FAST = frozenset({"sqlite", "postgresql"})
_compiled: dict[tuple[str, str, str], tuple[str, list[str], list[_Processor]]] = {}


def _statement(table: Table, dialect: Dialect) -> tuple[str, list[str], list[_Processor]]:
    key = (table.name, dialect.name, dialect.driver)
    found = _compiled.get(key)
    if found is None:
        compiled = insert(table).compile(dialect=dialect)
        names = list(compiled.positiontup or [])
        processors: list[_Processor] = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        ]
        found = (compiled.string, names, processors)
        _compiled[key] = found
    return found


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    shared: dict[str, Any] | None = None,
) -> None:
    """INSERT ``rows`` into ``table`` as one executemany.

    Every column is given, by ``shared`` (one value for every row) or by each row; a nullable
    column given by neither is NULL. Nothing else is filled in: no Python-side defaults.
    """
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name not in _FAST:  # SQLAlchemy's generic way (MariaDB)
        everything = [{**row, **(shared or {})} for row in rows]
        await connection.execute(insert(table), everything)
        return
    sql, names, processors = _statement(table, connection.dialect)
    shared = shared or {}
    fixed: list[tuple[bool, Any]] = []  # per column: (same for every row, its converted value)
    for name, process in zip(names, processors, strict=True):
        if name in shared:
            value = shared[name]
            fixed.append((True, process(value) if process is not None else value))
        elif name not in rows[0]:
            if not table.c[name].nullable:
                raise ValueError(f"insert_rows: no value for {table.name}.{name}")
            fixed.append((True, None))
        else:
            fixed.append((False, None))
    plan = list(zip(names, processors, fixed, strict=True))
    parameters = [
        tuple(
            value if constant else (process(row[name]) if process is not None else row[name])
            for name, process, (constant, value) in plan
        )
        for row in rows
    ]
    await connection.exec_driver_sql(sql, parameters)
