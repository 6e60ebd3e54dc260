"""What revisions write, gathered first and then sent together.

``Rows`` collects the rows of one revision or of many, in one namespace or several: each key's
final entry, every version, the revisions, their audit events and each namespace's new revision.
``write_rows`` sends them in a fixed number of statements whatever their number, so a
10,000-key document and the group commit of fifty single-entry writes
(``konfig.configs.writes``) both cost a handful of statements.

A key changed by several revisions of one ``Rows`` is written once, in its final state (a key
deleted and created again is updated in place), and a version written here and superseded here
gets its ``superseded_at`` before it is inserted: no statement depends on another's effect beyond
the fixed order of ``write_rows``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm.attributes import set_committed_value

from konfig.audit.context import AuditContext
from konfig.audit.models import AuditEvent
from konfig.configs import references
from konfig.configs.models import ConfigEntry
from konfig.db import outbox
from konfig.db.bulk import insert_rows
from konfig.namespaces.models import Namespace
from konfig.revisions import audit_rows
from konfig.revisions.models import EntryVersion, Revision
from konfig.revisions.values import encrypt_value
from konfig.security.crypto import Keyring

_CHUNK = 500
_ENTRIES = cast(Table, ConfigEntry.__table__)
_VERSIONS = cast(Table, EntryVersion.__table__)
_REVISIONS = cast(Table, Revision.__table__)
_NAMESPACES = cast(Table, Namespace.__table__)
_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
# What writing an entry that is already stored sets (its id, tenant, namespace and key stay).
UPDATED_COLUMNS = (
    "value_ciphertext",
    "value_type",
    "validation_schema",
    "description",
    "is_secret",
    "version",
    "revision",
    "updated_by",
    "created_at",
    "updated_at",
    "refs",
)
# By primary key, executemany: the ORM's bulk update by primary key costs a millisecond more.
_UPDATE_ENTRIES = (
    update(_ENTRIES)
    .where(_ENTRIES.c.id == bindparam("entry_id"))
    .values({column: bindparam(column) for column in UPDATED_COLUMNS})
)
_SUPERSEDE_ONE = (
    update(_VERSIONS)
    .where(
        _VERSIONS.c.namespace_id == bindparam("ns"),
        _VERSIONS.c.key == bindparam("k"),
        _VERSIONS.c.version == bindparam("v"),
        _VERSIONS.c.superseded_at.is_(None),
    )
    .values(superseded_at=bindparam("rev"))
)
_UPDATE_NAMESPACES = (
    update(_NAMESPACES)
    .where(_NAMESPACES.c.id == bindparam("ns"))
    .values(revision=bindparam("rev"), updated_at=bindparam("at"), updated_by=bindparam("by"))
)


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """The desired state of one key."""

    key: str
    value: Any
    value_type: str = "string"
    validation_schema: dict[str, Any] | None = None
    description: str = ""
    is_secret: bool = False


@dataclass(frozen=True, slots=True)
class Committed:
    tenant_id: uuid.UUID
    namespace_id: uuid.UUID
    namespace_name: str
    revision: int
    keys: tuple[str, ...]


def random_ids(count: int) -> Iterator[uuid.UUID]:
    """``count`` random (version 4) UUIDs from one read of the OS's random source: what
    ``uuid4()`` gives, without a system call each (a 10,000-key document needs 20,000)."""
    raw = os.urandom(16 * count)
    for start in range(0, len(raw), 16):
        yield uuid.UUID(bytes=raw[start : start + 16], version=4)


@dataclass
class _Key:
    """One key's fate in a ``Rows``."""

    stored_id: uuid.UUID | None  # the entry row the database held before, if any
    row: dict[str, Any] | None = None  # the final state; None: deleted
    version: dict[str, Any] | None = None  # the newest version row written here


def referenced_namespaces(value: Any) -> list[str] | None:
    """The other namespaces a value's references name (``${ref:ns:key}``), for the webhooks'
    fan-out to find who reads a namespace through references; None for a plain value."""
    if not references.mentions(value):
        return None
    try:
        named = sorted({ref.namespace for ref in references.parse(value) if ref.namespace})
    except references.ReferenceProblem:
        return None  # refused at write time; a plain text here
    return named or None


@dataclass(frozen=True, slots=True)
class _NextRevision:
    """The revision being added to a namespace: what each of its rows shares, and the ids they
    take (drawn in one read of the OS's random source)."""

    keyring: Keyring
    tenant_id: uuid.UUID
    namespace_id: uuid.UUID
    number: int
    actor: str
    now: datetime
    ids: Iterator[uuid.UUID]

    def ciphertext(self, draft: EntryDraft) -> bytes:
        return encrypt_value(
            self.keyring, self.tenant_id, self.namespace_id, draft.key, draft.value
        )

    def version_row(
        self, draft: EntryDraft, version: int, action: str, ciphertext: bytes | None
    ) -> dict[str, Any]:
        return {
            "id": next(self.ids),
            "tenant_id": self.tenant_id,
            "namespace_id": self.namespace_id,
            "key": draft.key,
            "version": version,
            "revision": self.number,
            "superseded_at": None,
            "action": action,
            "value_ciphertext": ciphertext,
            "value_type": draft.value_type,
            "validation_schema": draft.validation_schema,
            "description": draft.description,
            "is_secret": draft.is_secret,
            "actor": self.actor,
            "created_at": self.now,
        }

    def entry_row(
        self,
        entry_id: uuid.UUID,
        draft: EntryDraft,
        version: int,
        ciphertext: bytes,
        since: datetime,
    ) -> dict[str, Any]:
        return {
            "id": entry_id,
            "tenant_id": self.tenant_id,
            "namespace_id": self.namespace_id,
            "key": draft.key,
            "value_ciphertext": ciphertext,
            "value_type": draft.value_type,
            "validation_schema": draft.validation_schema,
            "description": draft.description,
            "is_secret": draft.is_secret,
            "version": version,
            "revision": self.number,
            "updated_by": self.actor,
            "created_at": since,
            "updated_at": self.now,
            "refs": referenced_namespaces(draft.value),
        }

    def revision_row(self, message: str | None, keys: list[str]) -> dict[str, Any]:
        return {
            "id": next(self.ids),
            "tenant_id": self.tenant_id,
            "namespace_id": self.namespace_id,
            "revision": self.number,
            "actor": self.actor,
            "message": message,
            "keys": keys,
            "created_at": self.now,
        }


@dataclass
class Rows:
    """The rows of one or more revisions, to be written together by ``write_rows``."""

    keys: dict[tuple[uuid.UUID, str], _Key] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)
    # Stored live versions that a revision here supersedes, (key, version) by (namespace,
    # revision): a document supersedes thousands at one revision, a group commit one at each of
    # many. The version makes each one a unique-index lookup, however long the history.
    superseded: dict[tuple[uuid.UUID, int], list[tuple[str, int]]] = field(default_factory=dict)
    revisions: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    # Each revision's ``config.changed`` event, committed with it (``konfig.db.outbox``).
    events: list[dict[str, Any]] = field(default_factory=list)
    namespaces: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    committed: list[Committed] = field(default_factory=list)

    def revise(
        self,
        *,
        keyring: Keyring,
        namespace: Namespace,
        actor: str,
        message: str | None,
        creates: Sequence[EntryDraft],
        updates: Sequence[EntryDraft],
        removals: Sequence[ConfigEntry],
        current: dict[str, ConfigEntry],
        last_versions: dict[str, int],
        now: datetime,
        context: AuditContext,
    ) -> dict[str, dict[str, Any]]:
        """Add the next revision of ``namespace`` (whose ``revision`` it raises) and answer the
        entry rows it writes, by key.

        ``current`` holds the entries as they stand before this revision (every updated key
        among them); ``last_versions`` the newest version of each created key that once existed
        (a key deleted and created again continues its numbering).
        """
        changes = len(creates) + len(updates) + len(removals)
        revision = _NextRevision(
            keyring,
            namespace.tenant_id,
            namespace.id,
            namespace.revision + 1,
            actor,
            now,
            # A version row per change, an entry row per created key, the revision row and
            # its event.
            random_ids(changes + len(creates) + 2),
        )
        written: dict[str, dict[str, Any]] = {}
        for draft in creates:
            written[draft.key] = self._create(revision, draft, last_versions.get(draft.key, 0))
        for draft in updates:
            written[draft.key] = self._update(revision, draft, current[draft.key])
        for entry in removals:
            self._remove(revision, entry)
        self.audits.append(
            audit_rows.event_row(
                keyring,
                namespace=namespace,
                revision=revision.number,
                actor=actor,
                message=message,
                creates=creates,
                updates=updates,
                removals=removals,
                current=current,
                now=now,
                context=context,
            )
        )
        changed = [d.key for d in creates] + [d.key for d in updates] + [e.key for e in removals]
        self._close(revision, namespace, message, sorted(changed))
        flags = [d.key for d in (*creates, *updates) if d.value_type == "flag"]
        flags += [e.key for e in removals if e.value_type == "flag"]
        if flags:  # beside config.changed: for subscribers to flags alone
            self.events.append(
                outbox.event_row(
                    tenant_id=revision.tenant_id,
                    type="flag.changed",
                    namespace_id=revision.namespace_id,
                    namespace=namespace.name,
                    sequence=revision.number,
                    at=revision.now,
                    data={
                        "namespace": namespace.name,
                        "revision": revision.number,
                        "flags": sorted(flags)[: outbox.MAX_LISTED_KEYS],
                        "actor": revision.actor,
                    },
                )
            )
        return written

    def _create(
        self, revision: _NextRevision, draft: EntryDraft, last_version: int
    ) -> dict[str, Any]:
        """A new key, or one that existed once (``last_version`` > 0) and whose numbering
        continues; answer its entry row."""
        fate = self._fate(revision.namespace_id, draft.key, stored_id=None)
        version = last_version + 1
        ciphertext = revision.ciphertext(draft)
        # A key deleted earlier in these rows keeps its stored row, written over.
        entry_id = fate.stored_id or next(revision.ids)
        row = revision.entry_row(entry_id, draft, version, ciphertext, revision.now)
        created = revision.version_row(draft, version, "create", ciphertext)
        # What it supersedes, if it ever existed: its deletion.
        self._change(fate, revision.number, row, created, live=version - 1)
        return row

    def _update(
        self, revision: _NextRevision, draft: EntryDraft, entry: ConfigEntry
    ) -> dict[str, Any]:
        """A stored key given a new state; answer its entry row."""
        fate = self._fate(revision.namespace_id, draft.key, stored_id=entry.id)
        version = entry.version + 1
        ciphertext = revision.ciphertext(draft)
        row = revision.entry_row(entry.id, draft, version, ciphertext, entry.created_at)
        updated = revision.version_row(draft, version, "update", ciphertext)
        self._change(fate, revision.number, row, updated, live=entry.version)
        return row

    def _remove(self, revision: _NextRevision, entry: ConfigEntry) -> None:
        """A stored key deleted: its entry row goes, a ``delete`` version records it."""
        fate = self._fate(revision.namespace_id, entry.key, stored_id=entry.id)
        gone = EntryDraft(
            entry.key,
            None,
            entry.value_type,
            entry.validation_schema,
            entry.description,
            entry.is_secret,
        )
        deleted = revision.version_row(gone, entry.version + 1, "delete", None)
        self._change(fate, revision.number, None, deleted, live=entry.version)

    def _close(
        self, revision: _NextRevision, namespace: Namespace, message: str | None, keys: list[str]
    ) -> None:
        """The revision row and the namespace's new revision, to be written and (on
        ``namespace``) already shown."""
        self.revisions.append(revision.revision_row(message, keys))
        self.events.append(
            outbox.event_row(
                tenant_id=revision.tenant_id,
                type="config.changed",
                namespace_id=revision.namespace_id,
                namespace=namespace.name,
                sequence=revision.number,
                at=revision.now,
                event_id=next(revision.ids),
                data={
                    "namespace": namespace.name,
                    "old_revision": revision.number - 1,
                    "new_revision": revision.number,
                    **outbox.listed_keys(keys),
                    "actor": revision.actor,
                    "message": message,
                },
            )
        )
        self.namespaces[revision.namespace_id] = {
            "ns": revision.namespace_id,
            "rev": revision.number,
            "at": revision.now,
            "by": revision.actor,
        }
        self.committed.append(
            Committed(
                revision.tenant_id,
                revision.namespace_id,
                namespace.name,
                revision.number,
                tuple(keys),
            )
        )
        # The object now says what the database will say, without the ORM writing it again.
        for attribute, value in (
            ("revision", revision.number),
            ("updated_at", revision.now),
            ("updated_by", revision.actor),
        ):
            set_committed_value(namespace, attribute, value)

    def removed(self) -> list[uuid.UUID]:
        """The stored entries to delete."""
        return [f.stored_id for f in self.keys.values() if f.stored_id is not None and not f.row]

    def rewritten(self) -> list[tuple[uuid.UUID, dict[str, Any]]]:
        """The stored entries to write over, each with its final state."""
        return [
            (f.stored_id, f.row)
            for f in self.keys.values()
            if f.stored_id is not None and f.row is not None
        ]

    def inserted(self) -> list[tuple[Table, list[dict[str, Any]]]]:
        """The new rows, by table (none left out: a table with nothing to insert included)."""
        new = [f.row for f in self.keys.values() if f.stored_id is None and f.row is not None]
        return [
            (_ENTRIES, new),
            (_VERSIONS, self.versions),
            (_REVISIONS, self.revisions),
            (_AUDIT_EVENTS, self.audits),
            (outbox.TABLE, self.events),
        ]

    def _fate(self, namespace_id: uuid.UUID, key: str, *, stored_id: uuid.UUID | None) -> _Key:
        """The key's fate; its stored row is the one it had when these rows first touched it."""
        fate = self.keys.get((namespace_id, key))
        if fate is None:
            fate = self.keys[(namespace_id, key)] = _Key(stored_id)
        return fate

    def _change(
        self,
        fate: _Key,
        revision: int,
        row: dict[str, Any] | None,
        version: dict[str, Any],
        *,
        live: int,
    ) -> None:
        """Record the key's new version; ``live`` is the one it supersedes (0: none)."""
        if fate.version is not None:  # the live version was written here: it ends here
            fate.version["superseded_at"] = revision
        elif live > 0:
            namespace_id, key = version["namespace_id"], version["key"]
            self.superseded.setdefault((namespace_id, revision), []).append((key, live))
        fate.row = row
        fate.version = version
        self.versions.append(version)


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _shared(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The columns every row gives the very same object (one revision's tenant, namespace,
    time and actor): ``insert_rows`` converts those once, not once a row."""
    if len(rows) < 2:  # one row: nothing to save, and a statement needs a varying column
        return {}
    first = rows[0]
    return {name: value for name, value in first.items() if all(r[name] is value for r in rows)}


async def _insert(connection: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        await insert_rows(connection, table, rows, shared=_shared(rows))


async def write_rows(connection: AsyncConnection, rows: Rows) -> None:
    """Write ``rows`` in the caller's transaction."""
    singles = [
        {"ns": ns, "k": live[0][0], "v": live[0][1], "rev": rev}
        for (ns, rev), live in rows.superseded.items()
        if len(live) == 1
    ]
    if singles:
        await connection.execute(_SUPERSEDE_ONE, singles)
    for (namespace_id, revision), live in rows.superseded.items():
        if len(live) > 1:  # a document: by key, a chunk at a time
            for chunk in _chunks([key for key, _ in live]):
                await connection.execute(
                    update(_VERSIONS)
                    .where(
                        _VERSIONS.c.namespace_id == namespace_id,
                        _VERSIONS.c.key.in_(chunk),
                        _VERSIONS.c.superseded_at.is_(None),
                    )
                    .values(superseded_at=revision)
                )

    for chunk in _chunks(rows.removed()):
        await connection.execute(delete(_ENTRIES).where(_ENTRIES.c.id.in_(chunk)))
    kept = [
        {"entry_id": entry_id, **{c: row[c] for c in UPDATED_COLUMNS}}
        for entry_id, row in rows.rewritten()
    ]
    if kept:
        await connection.execute(_UPDATE_ENTRIES, kept)
    for table, table_rows in rows.inserted():
        await _insert(connection, table, table_rows)
    if rows.namespaces:
        await connection.execute(_UPDATE_NAMESPACES, list(rows.namespaces.values()))
