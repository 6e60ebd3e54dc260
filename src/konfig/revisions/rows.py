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

import orjson
from sqlalchemy import Table, bindparam, delete, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm.attributes import set_committed_value

from konfig.audit import service as audit
from konfig.audit.context import AuditContext
from konfig.audit.models import AuditEvent
from konfig.configs.models import ConfigEntry
from konfig.db.bulk import insert_rows
from konfig.namespaces.models import Namespace
from konfig.revisions.models import EntryVersion, Revision
from konfig.security.crypto import DecryptionError, Keyring, associated_data

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
_AUDITED_CHANGES = 100  # a revision's audit summary lists this many changes, then counts the rest


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


def encrypt_value(
    keyring: Keyring, tenant_id: uuid.UUID, namespace_id: uuid.UUID, key: str, value: Any
) -> bytes:
    return keyring.encrypt(orjson.dumps(value), associated_data(tenant_id, namespace_id, key))


def decrypt_value(
    keyring: Keyring, tenant_id: uuid.UUID, namespace_id: uuid.UUID, key: str, ciphertext: bytes
) -> Any:
    return orjson.loads(keyring.decrypt(ciphertext, associated_data(tenant_id, namespace_id, key)))


def readable_value(keyring: Keyring, entry: ConfigEntry) -> Any:
    """The entry's value, or a marker when it fails its integrity check: an unreadable old
    value must never block replacing it."""
    try:
        return decrypt_value(
            keyring, entry.tenant_id, entry.namespace_id, entry.key, entry.value_ciphertext
        )
    except DecryptionError:
        return "<unreadable>"


@dataclass
class _Key:
    """One key's fate in a ``Rows``."""

    stored_id: uuid.UUID | None  # the entry row the database held before, if any
    row: dict[str, Any] | None = None  # the final state; None: deleted
    version: dict[str, Any] | None = None  # the newest version row written here


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
        tenant_id, namespace_id = namespace.tenant_id, namespace.id
        revision = namespace.revision + 1
        changed = [d.key for d in creates] + [d.key for d in updates] + [e.key for e in removals]
        ids = random_ids(len(changed) + len(creates) + 1)
        written: dict[str, dict[str, Any]] = {}

        def version_row(
            draft: EntryDraft, version: int, action: str, ciphertext: bytes | None
        ) -> dict[str, Any]:
            return {
                "id": next(ids),
                "tenant_id": tenant_id,
                "namespace_id": namespace_id,
                "key": draft.key,
                "version": version,
                "revision": revision,
                "superseded_at": None,
                "action": action,
                "value_ciphertext": ciphertext,
                "value_type": draft.value_type,
                "validation_schema": draft.validation_schema,
                "description": draft.description,
                "is_secret": draft.is_secret,
                "actor": actor,
                "created_at": now,
            }

        def entry_row(
            entry_id: uuid.UUID, draft: EntryDraft, version: int, ciphertext: bytes, since: datetime
        ) -> dict[str, Any]:
            return {
                "id": entry_id,
                "tenant_id": tenant_id,
                "namespace_id": namespace_id,
                "key": draft.key,
                "value_ciphertext": ciphertext,
                "value_type": draft.value_type,
                "validation_schema": draft.validation_schema,
                "description": draft.description,
                "is_secret": draft.is_secret,
                "version": version,
                "revision": revision,
                "updated_by": actor,
                "created_at": since,
                "updated_at": now,
            }

        for draft in creates:
            fate = self._fate(namespace_id, draft.key, stored_id=None)
            version = last_versions.get(draft.key, 0) + 1
            ciphertext = encrypt_value(keyring, tenant_id, namespace_id, draft.key, draft.value)
            # A key deleted earlier in these rows keeps its stored row, written over.
            row = entry_row(fate.stored_id or next(ids), draft, version, ciphertext, now)
            created = version_row(draft, version, "create", ciphertext)
            # What it supersedes, if it ever existed: its deletion.
            self._change(fate, revision, row, created, live=version - 1)
            written[draft.key] = row
        for draft in updates:
            entry = current[draft.key]
            fate = self._fate(namespace_id, draft.key, stored_id=entry.id)
            version = entry.version + 1
            ciphertext = encrypt_value(keyring, tenant_id, namespace_id, draft.key, draft.value)
            row = entry_row(entry.id, draft, version, ciphertext, entry.created_at)
            updated = version_row(draft, version, "update", ciphertext)
            self._change(fate, revision, row, updated, live=entry.version)
            written[draft.key] = row
        for entry in removals:
            fate = self._fate(namespace_id, entry.key, stored_id=entry.id)
            gone = EntryDraft(
                entry.key,
                None,
                entry.value_type,
                entry.validation_schema,
                entry.description,
                entry.is_secret,
            )
            deleted = version_row(gone, entry.version + 1, "delete", None)
            self._change(fate, revision, None, deleted, live=entry.version)

        summary = _audit_summary(keyring, revision, creates, updates, current, removals, message)
        only = summary["changes"][0] if summary["total"] == 1 else None
        self.audits.append(
            audit.event_row(
                action=_audit_action(only),
                target_type="config",
                target=only["key"] if only else f"{summary['total']} keys",
                namespace=namespace.name,
                summary=summary,
                tenant_id=tenant_id,
                actor=actor,
                context=context,
            )
            | {"created_at": now}
        )
        self.revisions.append(
            {
                "id": next(ids),
                "tenant_id": tenant_id,
                "namespace_id": namespace_id,
                "revision": revision,
                "actor": actor,
                "message": message,
                "keys": sorted(changed),
                "created_at": now,
            }
        )
        self.namespaces[namespace_id] = {
            "ns": namespace_id,
            "rev": revision,
            "at": now,
            "by": actor,
        }
        self.committed.append(
            Committed(tenant_id, namespace_id, namespace.name, revision, tuple(sorted(changed)))
        )
        # The object now says what the database will say, without the ORM writing it again.
        for attribute, value in (
            ("revision", revision),
            ("updated_at", now),
            ("updated_by", actor),
        ):
            set_committed_value(namespace, attribute, value)
        return written

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


def _audit_action(only: dict[str, Any] | None) -> str:
    """A revision's audit action: what its one change did (turning a secret into a plain value
    is ``config.unsecret``, making a value secret ``config.secret``), or ``config.batch``."""
    if only is None:
        return "config.batch"
    flag = only.get("secret")
    if flag is not None:
        return {"added": "config.secret", "removed": "config.unsecret"}[flag]
    return f"config.{only['action']}"


def _audit_summary(
    keyring: Keyring,
    revision: int,
    creates: Sequence[EntryDraft],
    updates: Sequence[EntryDraft],
    current: dict[str, ConfigEntry],
    removals: Sequence[ConfigEntry],
    message: str | None,
) -> dict[str, Any]:
    """Before and after of each change, as keyed fingerprints; secrets masked."""
    changes: list[dict[str, Any]] = []
    for draft in creates[:_AUDITED_CHANGES]:
        after = audit.shown_value(keyring, draft.value, secret=draft.is_secret)
        changes.append({"key": draft.key, "action": "create", "after": after})
    for draft in updates[: max(0, _AUDITED_CHANGES - len(changes))]:
        old = current[draft.key]
        hide = old.is_secret or draft.is_secret
        before = audit.shown_value(keyring, readable_value(keyring, old), secret=hide)
        after = audit.shown_value(keyring, draft.value, secret=hide)
        change = {"key": draft.key, "action": "update", "before": before, "after": after}
        if old.is_secret != draft.is_secret:  # a security review looks for these
            change["secret"] = "added" if draft.is_secret else "removed"
        changes.append(change)
    for entry in removals[: max(0, _AUDITED_CHANGES - len(changes))]:
        before = audit.shown_value(keyring, readable_value(keyring, entry), secret=entry.is_secret)
        changes.append({"key": entry.key, "action": "delete", "before": before})
    total = len(creates) + len(updates) + len(removals)
    summary: dict[str, Any] = {
        "revision": revision,
        "message": message,
        "changes": changes,
        "total": total,
    }
    unsecret = sorted(d.key for d in updates if current[d.key].is_secret and not d.is_secret)
    if unsecret:  # every key, even past the listed changes
        summary["unsecret"] = unsecret
    return summary


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
