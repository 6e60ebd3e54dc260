"""The one way entries change: validate, encrypt, and record a revision, in one transaction.

Every write path (single entries, documents, rollback, import, restore) goes through
``commit_changes``. It locks the namespace row, so concurrent writers to one namespace queue up
and every committed change raises the revision by exactly one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from konfig.audit import service as audit
from konfig.configs.models import ConfigEntry
from konfig.configs.types import Limits, Problem, check_entry
from konfig.db.base import utcnow
from konfig.db.bulk import insert_rows
from konfig.db.session import COMMITTED
from konfig.errors import NotFound, PayloadTooLarge, ValidationFailed
from konfig.namespaces.models import Namespace
from konfig.revisions.models import EntryVersion, Revision
from konfig.security.crypto import DecryptionError, Keyring, associated_data, load_keyring
from konfig.settings import Settings

_CHUNK = 500
# Core statements throughout: the rows are complete, and the ORM would only add per-row work.
_VERSIONS = cast(Table, EntryVersion.__table__)
_INSERT_REVISION = insert(cast(Table, Revision.__table__))
_NAMESPACES = cast(Table, Namespace.__table__)
# What an update leaves as it was (the rest comes from the written row).
_ENTRY_COLUMNS = ("tenant_id", "namespace_id", "key", "created_at")
_UPDATED_COLUMNS = (
    "value_ciphertext",
    "value_type",
    "validation_schema",
    "description",
    "is_secret",
    "version",
    "revision",
    "updated_by",
    "updated_at",
)
_ENTRIES = cast(Table, ConfigEntry.__table__)
# By primary key, executemany: the ORM's bulk update by primary key costs a millisecond more.
_UPDATE_ENTRIES = (
    update(_ENTRIES)
    .where(_ENTRIES.c.id == bindparam("entry_id"))
    .values({column: bindparam(column) for column in _UPDATED_COLUMNS})
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
class WritePolicy:
    keyring: Keyring
    limits: Limits
    max_keys: int


@dataclass(frozen=True, slots=True)
class Committed:
    tenant_id: uuid.UUID
    namespace_id: uuid.UUID
    namespace_name: str
    revision: int
    keys: tuple[str, ...]


@dataclass
class Outcome:
    namespace: Namespace
    revision: int | None  # None: nothing changed, nothing recorded
    changed: list[str] = field(default_factory=list)
    # The rows as written, by key (created or updated; deleted keys are absent).
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def written(self, key: str) -> ConfigEntry | None:
        """The entry ``key`` as this change wrote it: a detached object built from the row,
        so answering with it costs no query (built on demand: a document writes thousands)."""
        row = self.rows.get(key)
        return None if row is None else ConfigEntry(**row)


def write_policy(settings: Settings) -> WritePolicy:
    """The keyring and limits every writer uses, from the settings: the server's, the CLI's."""
    keyring = load_keyring(
        settings.encryption_keys, settings.data_dir, production=settings.is_production
    )
    limits = Limits(
        max_value_bytes=settings.max_value_bytes, max_json_depth=settings.max_json_depth
    )
    return WritePolicy(keyring=keyring, limits=limits, max_keys=settings.max_keys_per_namespace)


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


def validation_error(problems: dict[str, list[Problem]]) -> ValidationFailed | PayloadTooLarge:
    """One error naming every bad entry; the first problem names its key and rule in the message."""
    errors = [p.as_dict(key) for key, found in problems.items() for p in found]
    first_key, first = next((k, ps[0]) for k, ps in problems.items())
    message = f"{first_key}: {first.message} (rule: {first.rule})"
    if len(errors) > 1:
        message += f"; {len(errors) - 1} more problem(s) in details.errors"
    details = {"key": first_key, "rule": first.rule, "errors": errors}
    if all(p.too_large for found in problems.values() for p in found):
        return PayloadTooLarge(message, details)
    return ValidationFailed(message, details)


def check_drafts(drafts: Sequence[EntryDraft], limits: Limits) -> None:
    problems: dict[str, list[Problem]] = {}
    seen: set[str] = set()
    for draft in drafts:
        if draft.key in seen:
            problems.setdefault(draft.key, []).append(
                Problem("key", "unique", "the key appears more than once")
            )
        seen.add(draft.key)
        found = check_entry(
            draft.value_type, draft.value, draft.validation_schema, limits, secret=draft.is_secret
        )
        if found:
            problems.setdefault(draft.key, []).extend(found)
    if problems:
        raise validation_error(problems)


async def lock_namespace(
    session: AsyncSession, *, tenant_id: uuid.UUID, namespace_id: uuid.UUID
) -> Namespace:
    """The namespace row, locked for this transaction (SQLite: the writer holds the lock)."""
    query = (
        select(Namespace)
        .where(Namespace.id == namespace_id, Namespace.tenant_id == tenant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    namespace = (await session.execute(query)).scalar_one_or_none()
    if namespace is None:
        raise NotFound(f"no namespace {namespace_id}")
    return namespace


async def current_entries(
    session: AsyncSession, namespace: Namespace, keys: Sequence[str]
) -> dict[str, ConfigEntry]:
    query = (
        select(ConfigEntry)
        .where(ConfigEntry.namespace_id == namespace.id)
        .execution_options(populate_existing=True)
    )
    if len(keys) <= _CHUNK:
        query = query.where(ConfigEntry.key.in_(keys))
    wanted = set(keys)
    return {e.key: e for e in (await session.execute(query)).scalars() if e.key in wanted}


def _unchanged(entry: ConfigEntry, draft: EntryDraft, policy: WritePolicy) -> bool:
    if (
        entry.value_type != draft.value_type
        or (entry.validation_schema or None) != (draft.validation_schema or None)
        or entry.description != draft.description
        or entry.is_secret != draft.is_secret
    ):
        return False
    try:
        current = decrypt_value(
            policy.keyring, entry.tenant_id, entry.namespace_id, entry.key, entry.value_ciphertext
        )
    except DecryptionError:  # a damaged stored value is replaced, never an obstacle to writing
        return False
    return bool(orjson.dumps(current) == orjson.dumps(draft.value))


async def _last_versions(
    session: AsyncSession, namespace_id: uuid.UUID, keys: list[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        query = (
            select(EntryVersion.key, func.max(EntryVersion.version))
            .where(EntryVersion.namespace_id == namespace_id, EntryVersion.key.in_(chunk))
            .group_by(EntryVersion.key)
        )
        found.update({key: int(version) for key, version in (await session.execute(query)).all()})
    return found


_AUDITED_CHANGES = 100  # a batch's audit summary lists this many changes, then counts the rest


async def _audit(
    session: AsyncSession,
    policy: WritePolicy,
    namespace: Namespace,
    revision: int,
    creates: list[EntryDraft],
    updates: list[EntryDraft],
    current: dict[str, ConfigEntry],
    removals: list[ConfigEntry],
    message: str | None,
    actor: str,
) -> None:
    """One audit event per revision, with before/after of each change; secrets masked."""
    changes: list[dict[str, Any]] = []
    for draft in creates[:_AUDITED_CHANGES]:
        after = audit.shown_value(policy.keyring, draft.value, secret=draft.is_secret)
        changes.append({"key": draft.key, "action": "create", "after": after})
    for draft in updates[: max(0, _AUDITED_CHANGES - len(changes))]:
        old = current[draft.key]
        hide = old.is_secret or draft.is_secret
        before = audit.shown_value(policy.keyring, _value_of(policy, old), secret=hide)
        after = audit.shown_value(policy.keyring, draft.value, secret=draft.is_secret)
        changes.append({"key": draft.key, "action": "update", "before": before, "after": after})
    for entry in removals[: max(0, _AUDITED_CHANGES - len(changes))]:
        before = audit.shown_value(policy.keyring, _value_of(policy, entry), secret=entry.is_secret)
        changes.append({"key": entry.key, "action": "delete", "before": before})
    total = len(creates) + len(updates) + len(removals)
    only = changes[0] if total == 1 else None
    await audit.record(
        session,
        action=f"config.{only['action']}" if only else "config.batch",
        target_type="config",
        target=only["key"] if only else f"{total} keys",
        namespace=namespace.name,
        summary={"revision": revision, "message": message, "changes": changes, "total": total},
        tenant_id=namespace.tenant_id,
        actor=actor,
    )


def _value_of(policy: WritePolicy, entry: ConfigEntry) -> Any:
    try:
        return decrypt_value(
            policy.keyring, entry.tenant_id, entry.namespace_id, entry.key, entry.value_ciphertext
        )
    except DecryptionError:  # an unreadable old value must not block replacing it
        return "<unreadable>"


async def commit_changes(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    tenant_id: uuid.UUID,
    namespace_id: uuid.UUID,
    actor: str,
    upserts: Sequence[EntryDraft] = (),
    deletes: Sequence[str] = (),
    message: str | None = None,
    locked: Namespace | None = None,
    current: dict[str, ConfigEntry] | None = None,
) -> Outcome:
    """Apply upserts and deletions as one revision; unchanged keys are skipped.

    ``locked`` and ``current`` spare the queries when the caller already holds the namespace
    lock and has read, under it, the current entries of every key it passes.
    Raises ``ValidationFailed`` (every bad entry listed) before anything is written.
    """
    check_drafts(upserts, policy.limits)
    namespace = locked or await lock_namespace(
        session, tenant_id=tenant_id, namespace_id=namespace_id
    )
    if current is None:
        keys = [d.key for d in upserts] + list(deletes)
        current = await current_entries(session, namespace, keys)

    creates = [d for d in upserts if d.key not in current]
    updates = [d for d in upserts if d.key in current and not _unchanged(current[d.key], d, policy)]
    removals = [current[k] for k in dict.fromkeys(deletes) if k in current]
    if not (creates or updates or removals):
        return Outcome(namespace, None)

    if creates:
        count = (
            await session.scalar(
                select(func.count()).where(ConfigEntry.namespace_id == namespace.id)
            )
            or 0
        )
        total = count + len(creates) - len(removals)
        if total > policy.max_keys:
            raise ValidationFailed(
                f"namespace {namespace.name} would hold {total} keys, "
                f"over the limit of {policy.max_keys} keys per namespace",
                {"rule": "max_keys_per_namespace", "limit": policy.max_keys},
            )

    revision = namespace.revision + 1
    now = utcnow()
    # A namespace that never had a revision has no history to continue.
    last_versions = (
        await _last_versions(session, namespace.id, [d.key for d in creates])
        if namespace.revision > 0 and creates
        else {}
    )
    changed = [d.key for d in creates] + [d.key for d in updates] + [e.key for e in removals]

    # Summarise before writing: the bulk statements below refresh the loaded rows.
    await _audit(
        session, policy, namespace, revision, creates, updates, current, removals, message, actor
    )

    # Close the versions these changes supersede: one statement per chunk of keys.
    for start in range(0, len(changed), _CHUNK):
        await session.execute(
            update(_VERSIONS)
            .where(
                _VERSIONS.c.namespace_id == namespace.id,
                _VERSIONS.c.key.in_(changed[start : start + _CHUNK]),
                _VERSIONS.c.superseded_at.is_(None),
            )
            .values(superseded_at=revision)
        )

    versions: list[dict[str, Any]] = []
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    ids = random_ids(len(changed) + len(creates))  # a version per change, a row per create

    def version_row(
        draft: EntryDraft, version: int, action: str, ciphertext: bytes
    ) -> dict[str, Any]:
        return {
            "id": next(ids),
            "tenant_id": tenant_id,
            "namespace_id": namespace.id,
            "key": draft.key,
            "version": version,
            "revision": revision,
            "action": action,
            "value_ciphertext": ciphertext,
            "value_type": draft.value_type,
            "validation_schema": draft.validation_schema,
            "description": draft.description,
            "is_secret": draft.is_secret,
            "actor": actor,
            "created_at": now,
        }

    for draft in creates:
        version = last_versions.get(draft.key, 0) + 1
        ciphertext = encrypt_value(policy.keyring, tenant_id, namespace.id, draft.key, draft.value)
        versions.append(version_row(draft, version, "create", ciphertext))
        new_rows.append(
            {
                "id": next(ids),
                "tenant_id": tenant_id,
                "namespace_id": namespace.id,
                "key": draft.key,
                "value_ciphertext": ciphertext,
                "value_type": draft.value_type,
                "validation_schema": draft.validation_schema,
                "description": draft.description,
                "is_secret": draft.is_secret,
                "version": version,
                "revision": revision,
                "updated_by": actor,
                "created_at": now,
                "updated_at": now,
            }
        )
    for draft in updates:
        entry = current[draft.key]
        ciphertext = encrypt_value(policy.keyring, tenant_id, namespace.id, draft.key, draft.value)
        versions.append(version_row(draft, entry.version + 1, "update", ciphertext))
        changed_rows.append(
            {
                "id": entry.id,
                "value_ciphertext": ciphertext,
                "value_type": draft.value_type,
                "validation_schema": draft.validation_schema,
                "description": draft.description,
                "is_secret": draft.is_secret,
                "version": entry.version + 1,
                "revision": revision,
                "updated_by": actor,
                "updated_at": now,
            }
        )
    for entry in removals:
        gone = EntryDraft(
            entry.key,
            None,
            entry.value_type,
            entry.validation_schema,
            entry.description,
            entry.is_secret,
        )
        row = version_row(gone, entry.version + 1, "delete", b"")
        row["value_ciphertext"] = None
        versions.append(row)

    await insert_rows(
        session,
        _ENTRIES,
        new_rows,
        shared={
            "tenant_id": tenant_id,
            "namespace_id": namespace.id,
            "revision": revision,
            "updated_by": actor,
            "created_at": now,
            "updated_at": now,
        },
    )
    if changed_rows:
        await session.execute(
            _UPDATE_ENTRIES,
            [
                {"entry_id": row["id"], **{c: row[c] for c in _UPDATED_COLUMNS}}
                for row in changed_rows
            ],
        )
    for start in range(0, len(removals), _CHUNK):
        gone_ids = [e.id for e in removals[start : start + _CHUNK]]
        await session.execute(delete(_ENTRIES).where(_ENTRIES.c.id.in_(gone_ids)))
    await insert_rows(
        session,
        _VERSIONS,
        versions,
        shared={
            "tenant_id": tenant_id,
            "namespace_id": namespace.id,
            "revision": revision,
            "actor": actor,
            "created_at": now,
        },
    )
    await session.execute(
        _INSERT_REVISION,
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "namespace_id": namespace.id,
            "revision": revision,
            "actor": actor,
            "message": message,
            "keys": sorted(changed),
            "created_at": now,
        },
    )
    await session.execute(
        update(_NAMESPACES)
        .where(_NAMESPACES.c.id == namespace.id)
        .values(revision=revision, updated_at=now, updated_by=actor)
    )
    # The loaded row now says what the database says, without a flush to write it again.
    for attribute, value in (("revision", revision), ("updated_at", now), ("updated_by", actor)):
        set_committed_value(namespace, attribute, value)
    session.info.setdefault(COMMITTED, []).append(
        Committed(tenant_id, namespace.id, namespace.name, revision, tuple(sorted(changed)))
    )
    written = {row["key"]: row for row in new_rows}
    for draft, row in zip(updates, changed_rows, strict=True):
        before = current[draft.key]
        written[draft.key] = {column: getattr(before, column) for column in _ENTRY_COLUMNS} | row
    return Outcome(namespace, revision, sorted(changed), written)
