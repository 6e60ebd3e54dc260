"""The SQL of single-entry writes (``konfig.configs.writes``), on each backend.

A store reads what a batch of writes needs (its namespaces, locked, and their keys) and writes
the batch's ``Rows``. ``CoreStore`` speaks SQLAlchemy Core on any connection: a request
session's transaction, or MariaDB. ``SqliteStore`` and ``PostgresStore`` speak to the driver
itself, for the group commit: a batch is a handful of statements, and SQLAlchemy's own work per
statement (compiling, processing, and on SQLite a trip to aiosqlite's thread each) cost several
times what the database did. SQLite gets two trips to its thread per batch: begin and read,
then write and commit. Values pass through the columns' own SQLAlchemy processors
(``konfig.db.bulk.Plan``), so the stores write and read exactly what SQLAlchemy would.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol, cast

from sqlalchemy import Table, select, text, tuple_
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from konfig.audit.models import AuditEvent
from konfig.configs.models import ConfigEntry
from konfig.db import outbox
from konfig.db.base import detached
from konfig.db.bulk import Plan, plan
from konfig.db.session import begin_bound
from konfig.db.sqlite_driver import OneTripConnection, Statement
from konfig.namespaces.models import Namespace
from konfig.revisions.models import EntryVersion, Revision
from konfig.revisions.rows import UPDATED_COLUMNS, Rows, write_rows
from konfig.revisions.writer import entry_count, last_versions_of

_ENTRIES = cast(Table, ConfigEntry.__table__)
_NAMESPACES = cast(Table, Namespace.__table__)
_VERSIONS = cast(Table, EntryVersion.__table__)
_REVISIONS = cast(Table, Revision.__table__)
_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")

Place = tuple[uuid.UUID, str]  # a key of a namespace
Loaded = tuple[dict[uuid.UUID, Namespace], dict[Place, ConfigEntry]]


class Store(Protocol):
    async def load(
        self,
        namespace_ids: Sequence[uuid.UUID],
        places: Sequence[Place],
        tenant_ids: Sequence[uuid.UUID],
    ) -> Loaded:
        """The namespaces, locked (the store's transaction begins here when it owns one, bound
        to the writers' tenants for row-level security), and the entries stored at ``places``."""

    async def count(self, namespace_id: uuid.UUID) -> int:
        """How many keys the namespace holds."""

    async def last_version(self, namespace_id: uuid.UUID, key: str) -> int:
        """The newest version the key ever had; 0 if none."""

    async def write(self, rows: Rows, notices: Sequence[tuple[str, str]] = ()) -> None:
        """Write ``rows`` (and commit, when the store owns its transaction), sending
        ``notices`` (``(channel, payload)``, PostgreSQL's NOTIFY) inside the transaction."""

    async def abort(self) -> None:
        """Roll back what was begun, when the store owns its transaction."""


class CoreStore:
    """Through SQLAlchemy Core: in a transaction the caller owns, or in one of its own."""

    def __init__(self, connection: AsyncConnection, *, owns_transaction: bool = False) -> None:
        self.connection = connection
        self.owns_transaction = owns_transaction
        self._transaction: AsyncTransaction | None = None

    async def load(
        self,
        namespace_ids: Sequence[uuid.UUID],
        places: Sequence[Place],
        tenant_ids: Sequence[uuid.UUID],
    ) -> Loaded:
        if self.owns_transaction:
            # MariaDB: no row-level security to bind (PostgreSQL's group commit is
            # PostgresStore's; a request session's transaction is bound already).
            self._transaction = await self.connection.begin()
        query = select(_NAMESPACES).where(_NAMESPACES.c.id.in_(namespace_ids))
        found = await self.connection.execute(query.order_by(_NAMESPACES.c.id).with_for_update())
        namespaces = {row["id"]: detached(Namespace, row) for row in found.mappings()}
        entries: dict[Place, ConfigEntry] = {}
        if places:
            column = tuple_(_ENTRIES.c.namespace_id, _ENTRIES.c.key)
            stored = await self.connection.execute(select(_ENTRIES).where(column.in_(places)))
            entries = {
                (e["namespace_id"], e["key"]): detached(ConfigEntry, e) for e in stored.mappings()
            }
        return namespaces, entries

    async def count(self, namespace_id: uuid.UUID) -> int:
        return await entry_count(self.connection, namespace_id)

    async def last_version(self, namespace_id: uuid.UUID, key: str) -> int:
        return (await last_versions_of(self.connection, namespace_id, [key])).get(key, 0)

    async def write(self, rows: Rows, notices: Sequence[tuple[str, str]] = ()) -> None:
        await write_rows(self.connection, rows)
        for channel, payload in notices:
            await self.connection.execute(_NOTIFY, {"channel": channel, "payload": payload})
        if self._transaction is not None:
            await self._transaction.commit()
            self._transaction = None

    async def abort(self) -> None:
        if self._transaction is not None:
            await self._transaction.rollback()
            self._transaction = None


class _Sql:
    """The statements, in one database's words (its placeholders, its quoting), made once."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.numbered = dialect.name == "postgresql"  # $1, $2 … rather than ?
        tables = (_ENTRIES, _NAMESPACES, _VERSIONS, _REVISIONS, _AUDIT_EVENTS, outbox.TABLE)
        self.plans = {t.name: plan(t, dialect) for t in tables}
        self.inserts = {t.name: self._insert(t) for t in tables if t is not _NAMESPACES}
        self.namespace_columns = self.columns(_NAMESPACES)
        self.entry_columns = self.columns(_ENTRIES)
        key = self.quote("key")
        a, b, c, d = self.marks(4)
        self.supersede = (
            f"UPDATE entry_versions SET superseded_at = {a} "
            f"WHERE namespace_id = {b} AND {key} = {c} AND version = {d} "
            "AND superseded_at IS NULL"
        )
        self.delete = f"DELETE FROM config_entries WHERE id = {a}"
        marks = self.marks(len(UPDATED_COLUMNS) + 1)
        assignments = ", ".join(
            f"{self.quote(name)} = {mark}"
            for name, mark in zip(UPDATED_COLUMNS, marks, strict=False)
        )
        self.update_entry = f"UPDATE config_entries SET {assignments} WHERE id = {marks[-1]}"
        self.update_namespace = (
            f"UPDATE namespaces SET revision = {a}, updated_at = {b}, updated_by = {c} "
            f"WHERE id = {d}"
        )
        self.count = f"SELECT count(*) FROM config_entries WHERE namespace_id = {a}"
        self.last_version = (
            f"SELECT max(version) FROM entry_versions WHERE namespace_id = {a} AND {key} = {b}"
        )

    def quote(self, name: str) -> str:
        return str(self.dialect.identifier_preparer.quote(name))

    def marks(self, count: int) -> list[str]:
        return [f"${n}" for n in range(1, count + 1)] if self.numbered else ["?"] * count

    def columns(self, table: Table) -> str:
        return ", ".join(self.quote(c.name) for c in table.columns)

    def _insert(self, table: Table) -> str:
        listed = ", ".join(self.quote(c.name) for c in table.columns)
        marks = ", ".join(self.marks(len(table.columns)))
        return f"INSERT INTO {table.name} ({listed}) VALUES ({marks})"

    def writes(self, rows: Rows) -> list[Statement]:
        """Every statement ``rows`` needs, with its parameters as the driver takes them."""
        versions, entries = self.plans[_VERSIONS.name], self.plans[_ENTRIES.name]
        statements: list[Statement] = []
        superseded = [
            (rev, versions.value("namespace_id", ns), name, version)
            for (ns, rev), live in rows.superseded.items()
            for name, version in live
        ]
        if superseded:
            statements.append((self.supersede, superseded, True))
        gone = [(entries.value("id", entry_id),) for entry_id in rows.removed()]
        if gone:
            statements.append((self.delete, gone, True))
        kept = [
            (*entries.encode(row, UPDATED_COLUMNS), entries.value("id", entry_id))
            for entry_id, row in rows.rewritten()
        ]
        if kept:
            statements.append((self.update_entry, kept, True))
        for table, table_rows in rows.inserted():
            if table_rows:
                table_plan = self.plans[table.name]
                encoded = [table_plan.encode(row, table_plan.names) for row in table_rows]
                statements.append((self.inserts[table.name], encoded, True))
        if rows.namespaces:
            namespaces = self.plans[_NAMESPACES.name]
            changed = [
                (
                    change["rev"],
                    namespaces.value("updated_at", change["at"]),
                    change["by"],
                    namespaces.value("id", change["ns"]),
                )
                for change in rows.namespaces.values()
            ]
            statements.append((self.update_namespace, changed, True))
        return statements


class _Arrays:
    """Numbered array parameters for one PostgreSQL statement."""

    def __init__(self) -> None:
        self.values: list[list[Any]] = []

    def add(self, values: list[Any], cast: str) -> str:
        self.values.append(values)
        return f"${len(self.values)}::{cast}[]"


def postgres_writes(sql: _Sql, rows: Rows) -> tuple[str, list[list[Any]]]:
    """All of ``rows`` as one PostgreSQL statement (one round trip): each write a
    data-modifying ``WITH`` part over ``unnest``-ed arrays. The parts cannot see one another's
    effects, and need not: ``Rows`` touches every row once."""
    arrays = _Arrays()
    parts: list[str] = []
    key = sql.quote("key")

    def columns(table: Table, names: Sequence[str], values: list[tuple[Any, ...]]) -> list[str]:
        types = dict(zip(sql.plans[table.name].names, sql.plans[table.name].types, strict=True))
        by_column = list(zip(*values, strict=True))
        return [arrays.add(list(by_column[i]), types[n]) for i, n in enumerate(names)]

    superseded = [
        (ns, name, version, rev)
        for (ns, rev), live in rows.superseded.items()
        for name, version in live
    ]
    if superseded:
        names = ("namespace_id", "key", "version", "superseded_at")
        ns, k, v, rev = columns(_VERSIONS, names, superseded)
        parts.append(
            f"UPDATE entry_versions e SET superseded_at = x.rev "
            f"FROM unnest({ns}, {k}, {v}, {rev}) AS x(ns, k, v, rev) "
            f"WHERE e.namespace_id = x.ns AND e.{key} = x.k AND e.version = x.v "
            "AND e.superseded_at IS NULL"
        )
    gone = rows.removed()
    if gone:
        parts.append(f"DELETE FROM config_entries WHERE id = ANY({arrays.add(gone, 'UUID')})")
    entries = sql.plans[_ENTRIES.name]
    kept = [(*entries.encode(row, UPDATED_COLUMNS), entry_id) for entry_id, row in rows.rewritten()]
    if kept:
        updated = (*UPDATED_COLUMNS, "id")
        unnested = ", ".join(columns(_ENTRIES, updated, kept))
        quoted = [sql.quote(n) for n in updated]
        assignments = ", ".join(f"{q} = x.{q}" for q in quoted[:-1])
        parts.append(
            f"UPDATE config_entries e SET {assignments} FROM unnest({unnested}) "
            f"AS x({', '.join(quoted)}) WHERE e.id = x.id"
        )
    for table, table_rows in rows.inserted():
        if table_rows:
            table_plan = sql.plans[table.name]
            encoded = [table_plan.encode(row, table_plan.names) for row in table_rows]
            unnested = ", ".join(columns(table, table_plan.names, encoded))
            listed = ", ".join(sql.quote(n) for n in table_plan.names)
            parts.append(f"INSERT INTO {table.name} ({listed}) SELECT * FROM unnest({unnested})")
    if rows.namespaces:
        namespaces = sql.plans[_NAMESPACES.name]
        changed = [
            (
                change["rev"],
                namespaces.value("updated_at", change["at"]),
                change["by"],
                change["ns"],
            )
            for change in rows.namespaces.values()
        ]
        unnested = ", ".join(
            columns(_NAMESPACES, ("revision", "updated_at", "updated_by", "id"), changed)
        )
        parts.append(
            "UPDATE namespaces n SET revision = x.revision, updated_at = x.updated_at, "
            f"updated_by = x.updated_by FROM unnest({unnested}) "
            "AS x(revision, updated_at, updated_by, id) WHERE n.id = x.id"
        )
    if len(parts) == 1:
        return parts[0], arrays.values
    leading = ", ".join(f"w{n} AS ({part})" for n, part in enumerate(parts[:-1]))
    return f"WITH {leading} {parts[-1]}", arrays.values


def _decode(table_plan: Plan, rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [table_plan.decode(tuple(row)) for row in rows]


class SqliteStore:
    """Straight to SQLite on aiosqlite's thread: two trips a batch, in a transaction of its own
    (``BEGIN IMMEDIATE``: this process's write turn, then the database's write lock)."""

    def __init__(self, connection: OneTripConnection, dialect: Dialect) -> None:
        self.connection = connection
        self.sql = _Sql(dialect)

    async def load(
        self,
        namespace_ids: Sequence[uuid.UUID],
        places: Sequence[Place],
        tenant_ids: Sequence[uuid.UUID],
    ) -> Loaded:
        sql = self.sql
        namespaces_plan, entries_plan = sql.plans[_NAMESPACES.name], sql.plans[_ENTRIES.name]
        script: list[Statement] = [("BEGIN IMMEDIATE", (), False)]
        script.append(
            (
                f"SELECT {sql.namespace_columns} FROM namespaces "
                f"WHERE id IN ({', '.join(sql.marks(len(namespace_ids)))})",
                [namespaces_plan.value("id", i) for i in namespace_ids],
                False,
            )
        )
        if places:
            pairs = ", ".join(["(?, ?)"] * len(places))
            script.append(
                (
                    f"SELECT {sql.entry_columns} FROM config_entries "
                    f"WHERE (namespace_id, {sql.quote('key')}) IN (VALUES {pairs})",
                    [
                        v
                        for ns, key in places
                        for v in (entries_plan.value("namespace_id", ns), key)
                    ],
                    False,
                )
            )
        answers = await self.connection.script(script)
        namespaces = {n["id"]: detached(Namespace, n) for n in _decode(namespaces_plan, answers[1])}
        stored = _decode(entries_plan, answers[2]) if places else []
        return namespaces, {(e["namespace_id"], e["key"]): detached(ConfigEntry, e) for e in stored}

    async def count(self, namespace_id: uuid.UUID) -> int:
        entries_plan = self.sql.plans[_ENTRIES.name]
        value = entries_plan.value("namespace_id", namespace_id)
        (answer,) = await self.connection.script([(self.sql.count, (value,), False)])
        return int(answer[0][0] or 0)

    async def last_version(self, namespace_id: uuid.UUID, key: str) -> int:
        versions_plan = self.sql.plans[_VERSIONS.name]
        value = versions_plan.value("namespace_id", namespace_id)
        (answer,) = await self.connection.script([(self.sql.last_version, (value, key), False)])
        return int(answer[0][0] or 0)

    async def write(self, rows: Rows, notices: Sequence[tuple[str, str]] = ()) -> None:
        # SQLite has no NOTIFY: its server is the only replica, ``notices`` is always empty.
        await self.connection.script([*self.sql.writes(rows), ("COMMIT", (), False)])

    async def abort(self) -> None:
        await self.connection.script([("ROLLBACK", (), False)])


# Every statement of the writer finds its rows by a unique key. Without statistics yet (a new
# database, a table that grew since autovacuum last looked) the planner takes these tables for
# tiny, scans them whole, and keeps that plan for the prepared statement: a write then cost
# time in proportion to the history (7 ms at 10,000 revisions). Keyed lookups only, then.
_KEYED_ONLY = "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off"


class PostgresStore:
    """Straight to asyncpg, in a transaction of its own; the namespaces are locked in id order,
    so two replicas' batches never wait on each other in a circle. Its connection is the
    writer's alone (``prepare`` sets it for keyed lookups), never handed back to the pool."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection  # asyncpg.Connection, with SQLAlchemy's codecs (json)
        self.sql = _Sql(dialect)
        self._transaction = False  # begun and not yet ended

    async def prepare(self) -> None:
        await self.connection.execute(_KEYED_ONLY)

    async def load(
        self,
        namespace_ids: Sequence[uuid.UUID],
        places: Sequence[Place],
        tenant_ids: Sequence[uuid.UUID],
    ) -> Loaded:
        sql = self.sql
        namespaces_plan, entries_plan = sql.plans[_NAMESPACES.name], sql.plans[_ENTRIES.name]
        # One round trip begins the transaction bound to its writers' tenants (row-level
        # security: the batch may touch their rows, no other's): the simple query protocol takes
        # both statements at once. The ids are UUIDs, checked to be nothing else.
        await self.connection.execute(begin_bound(tenant_ids))
        self._transaction = True
        found = await self.connection.fetch(
            f"SELECT {sql.namespace_columns} FROM namespaces "
            "WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            [namespaces_plan.value("id", i) for i in namespace_ids],
        )
        namespaces = {n["id"]: detached(Namespace, n) for n in _decode(namespaces_plan, found)}
        entries: dict[Place, ConfigEntry] = {}
        if places:
            stored = await self.connection.fetch(
                f"SELECT {sql.entry_columns} FROM config_entries "
                f"WHERE (namespace_id, {sql.quote('key')}) IN "
                "(SELECT * FROM unnest($1::uuid[], $2::varchar[]))",
                [entries_plan.value("namespace_id", ns) for ns, _ in places],
                [key for _, key in places],
            )
            entries = {
                (e["namespace_id"], e["key"]): detached(ConfigEntry, e)
                for e in _decode(entries_plan, stored)
            }
        return namespaces, entries

    async def count(self, namespace_id: uuid.UUID) -> int:
        return int(await self.connection.fetchval(self.sql.count, namespace_id) or 0)

    async def last_version(self, namespace_id: uuid.UUID, key: str) -> int:
        found = await self.connection.fetchval(self.sql.last_version, namespace_id, key)
        return int(found or 0)

    async def write(self, rows: Rows, notices: Sequence[tuple[str, str]] = ()) -> None:
        if rows.committed:
            statement, arrays = postgres_writes(self.sql, rows)
            await self.connection.execute(statement, *arrays)
        for channel, payload in notices:
            await self.connection.execute("SELECT pg_notify($1, $2)", channel, payload)
        await self.connection.execute("COMMIT")
        self._transaction = False

    async def abort(self) -> None:
        if self._transaction:
            self._transaction = False
            await self.connection.execute("ROLLBACK")
