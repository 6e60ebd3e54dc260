"""Inserting thousands of complete rows at once, for the writes that do (documents, imports).

SQLAlchemy's executemany builds every row's parameters through its generic machinery and runs
each value through its type's processor; for the 20,000 rows of a 10,000-key document that was
about half the write. Here the statement is built once per table and dialect, the processors are
looked up once per column, and a value every row shares (tenant, namespace, revision, time,
actor) is converted once:

- SQLite gets the plain INSERT as one ``executemany`` of tuples (one trip to its thread);
- PostgreSQL gets one statement whatever the number of rows, ``INSERT … SELECT … FROM
  unnest($1::uuid[], $2::varchar[], …)``: a column per array parameter, the shared values as
  scalars (asyncpg's executemany sends a message per row, about as slow as the rest together);
- anything else (MariaDB) goes through SQLAlchemy as usual.

The values are those SQLAlchemy would send: each column's own bind processor converts them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import NullType, TypeEngine

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Plan:
    """How a table's values go to and come from one database's driver, column by column."""

    names: list[str]
    processors: list[_Processor]  # to the driver
    results: list[_Processor]  # from the driver
    types: list[str]  # PostgreSQL type names, for the casts
    processor_of: dict[str, _Processor] = field(default_factory=dict)
    # The columns whose values are converted on the way out (position, converter).
    converted: list[tuple[int, Callable[[Any], Any]]] = field(default_factory=list)

    def encode(self, row: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
        """``row``'s values of the columns ``names``, as the driver takes them."""
        processor_of = self.processor_of
        return tuple(
            row[name] if (process := processor_of[name]) is None else process(row[name])
            for name in names
        )

    def value(self, name: str, value: Any) -> Any:
        process = self.processor_of[name]
        return value if process is None else process(value)

    def decode(self, values: Sequence[Any]) -> dict[str, Any]:
        """A row of every column, in the table's order, as SQLAlchemy would read it."""
        converted = list(values)
        for position, result in self.converted:
            converted[position] = result(converted[position])
        return dict(zip(self.names, converted, strict=True))


_plans: dict[tuple[str, str, str], Plan] = {}


def _type_of(column: Column[Any]) -> TypeEngine[Any]:
    # A foreign key column declared without a type takes its target's once resolved.
    if isinstance(column.type, NullType) and column.foreign_keys:
        return next(iter(column.foreign_keys)).column.type
    return column.type


def plan(table: Table, dialect: Dialect) -> Plan:
    key = (table.name, dialect.name, dialect.driver)
    found = _plans.get(key)
    if found is None:
        names = [column.name for column in table.columns]
        impls = [_type_of(table.c[name]).dialect_impl(dialect) for name in names]
        processors: list[_Processor] = [impl.bind_processor(dialect) for impl in impls]
        results: list[_Processor] = [impl.result_processor(dialect, None) for impl in impls]
        types = (
            [impl.compile(dialect=dialect) for impl in impls]
            if dialect.name == "postgresql"
            else []
        )
        found = _plans[key] = Plan(
            names,
            processors,
            results,
            types,
            dict(zip(names, processors, strict=True)),
            [(n, result) for n, result in enumerate(results) if result is not None],
        )
    return found


async def insert_rows(
    session: AsyncSession | AsyncConnection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    shared: dict[str, Any] | None = None,
) -> None:
    """INSERT ``rows`` into ``table`` in one statement (or one executemany).

    Every column is given, by ``shared`` (one value for every row) or by each row; a nullable
    column given by neither is NULL. Nothing else is filled in: no Python-side defaults.
    """
    if not rows:
        return
    shared = shared or {}
    nulls = _left_null(table, rows[0], shared)
    connection = await session.connection() if isinstance(session, AsyncSession) else session
    dialect = connection.dialect
    if dialect.name not in ("sqlite", "postgresql"):
        await connection.execute(insert(table), [{**nulls, **row, **shared} for row in rows])
        return
    table_plan = plan(table, dialect)
    columns: list[tuple[str, _Processor, bool, Any]] = []  # name, processor, shared?, value
    for name, process in zip(table_plan.names, table_plan.processors, strict=True):
        if name in shared:
            value = shared[name]
            columns.append((name, process, True, process(value) if process else value))
        elif name in nulls:
            columns.append((name, None, True, None))
        else:
            columns.append((name, process, False, None))
    if dialect.name == "postgresql":
        sql, parameters = _unnest(dialect, table, table_plan, columns, rows)
        await connection.exec_driver_sql(sql, parameters)
        return
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table.name} ({', '.join(_quoted(dialect, c[0]) for c in columns)}) "
    sql += f"VALUES ({placeholders})"
    tuples = [
        tuple(
            value if fixed else (process(row[name]) if process else row[name])
            for name, process, fixed, value in columns
        )
        for row in rows
    ]
    await connection.exec_driver_sql(sql, tuples)


def _left_null(table: Table, row: dict[str, Any], shared: dict[str, Any]) -> dict[str, None]:
    """The columns neither ``row`` nor ``shared`` gives, as NULLs; refused unless nullable."""
    nulls: dict[str, None] = {}
    for column in table.columns:
        if column.name in shared or column.name in row:
            continue
        if not column.nullable:
            raise ValueError(f"insert_rows: no value for {table.name}.{column.name}")
        nulls[column.name] = None
    return nulls


def _quoted(dialect: Dialect, name: str) -> str:
    return str(dialect.identifier_preparer.quote(name))


def _unnest(
    dialect: Dialect,
    table: Table,
    table_plan: Plan,
    columns: list[tuple[str, _Processor, bool, Any]],
    rows: Sequence[dict[str, Any]],
) -> tuple[str, tuple[Any, ...]]:
    """``INSERT … SELECT`` from one array parameter per varying column."""
    parameters: list[Any] = []
    arrays: list[str] = []
    selected: list[str] = []
    type_of = dict(zip(table_plan.names, table_plan.types, strict=True))
    for name, process, fixed, value in columns:
        cast = type_of[name]
        if fixed:
            if value is None:
                selected.append(f"NULL::{cast}")
                continue
            parameters.append(value)
            selected.append(f"${len(parameters)}::{cast}")
            continue
        if process is None:
            parameters.append([row[name] for row in rows])
        else:
            parameters.append([process(row[name]) for row in rows])
        arrays.append(f"${len(parameters)}::{cast}[]")
        selected.append(f"r{len(arrays)}")
    aliases = ", ".join(f"r{i}" for i in range(1, len(arrays) + 1))
    names = ", ".join(_quoted(dialect, name) for name, *_ in columns)
    sql = (  # names from the table's metadata, values as parameters
        f"INSERT INTO {table.name} ({names}) SELECT {', '.join(selected)} "  # noqa: S608
        f"FROM unnest({', '.join(arrays)}) AS rows({aliases})"
    )
    return sql, tuple(parameters)
