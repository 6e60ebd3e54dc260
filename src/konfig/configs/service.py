"""Entry rules: viewers read, editors write, secrets stay masked unless revealed by an editor."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.configs.models import ConfigEntry
from konfig.configs.schemas import MASK, ConfigCreate, ConfigPatch, ConfigRead, ConfigReplace
from konfig.errors import Conflict, KonfigError, NotFound, PreconditionFailed
from konfig.namespaces import service as namespaces
from konfig.pagination import Page, decode_cursor, encode_cursor
from konfig.revisions.writer import (
    EntryDraft,
    WritePolicy,
    commit_changes,
    decrypt_value,
    lock_namespace,
)
from konfig.security.crypto import DecryptionError
from konfig.users.models import Role


class StoredValueCorrupt(KonfigError):
    code, status_code = "INTERNAL", 500


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, current: ConfigEntry | None) -> None:
    """412 unless ``If-Match`` (when sent) names the entry's current version."""
    if if_match is None:
        return
    if current is None:
        raise PreconditionFailed("If-Match was sent but the entry does not exist")
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    if "*" not in tags and etag(current.version) not in tags:
        raise PreconditionFailed(
            f"the entry {current.key} is at version {current.version}, not the one in If-Match: "
            "read it again and reapply your change",
            {"current_version": current.version},
        )


def _must(entry: ConfigEntry | None) -> ConfigEntry:
    if entry is None:  # the row was written in this very transaction
        raise RuntimeError("an entry written in this transaction is missing")
    return entry


def may_reveal(principal: Principal, reveal: bool) -> bool:
    if reveal:
        principal.require(Role.editor)
    return reveal


def read_value(policy: WritePolicy, entry: ConfigEntry) -> Any:
    try:
        return decrypt_value(
            policy.keyring, entry.tenant_id, entry.namespace_id, entry.key, entry.value_ciphertext
        )
    except DecryptionError as exc:
        raise StoredValueCorrupt(
            f"the stored value of {entry.key} failed its integrity check; "
            "restore it from history or a backup",
            {"key": entry.key},
        ) from exc


def render(policy: WritePolicy, entry: ConfigEntry, *, reveal: bool) -> ConfigRead:
    value = MASK if entry.is_secret and not reveal else read_value(policy, entry)
    return ConfigRead(
        key=entry.key,
        value=value,
        value_type=entry.value_type,
        validation_schema=entry.validation_schema,
        description=entry.description,
        is_secret=entry.is_secret,
        version=entry.version,
        revision=entry.revision,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        updated_by=entry.updated_by,
    )


async def _entry(session: AsyncSession, namespace_id: uuid.UUID, key: str) -> ConfigEntry | None:
    query = (
        select(ConfigEntry)
        .where(ConfigEntry.namespace_id == namespace_id, ConfigEntry.key == key)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def get(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    reveal: bool = False,
) -> ConfigEntry:
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    entry = await _entry(session, namespace.id, key)
    if entry is None:
        raise NotFound(f"no key {key} in namespace {namespace.name}")
    if reveal and entry.is_secret:
        await audit.record_reveal(session, namespace=namespace.name, keys=[key], via="entry")
    return entry


async def list_page(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    cursor: str | None,
    limit: int,
    reveal: bool = False,
) -> tuple[list[ConfigEntry], str | None]:
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    position = decode_cursor(cursor)
    query = (
        select(ConfigEntry)
        .where(ConfigEntry.namespace_id == namespace.id)
        .order_by(ConfigEntry.key)
        .limit(limit + 1)
    )
    if position:
        query = query.where(ConfigEntry.key > str(position[0]))
    entries = list((await session.execute(query)).scalars())
    if reveal:
        secrets = [e.key for e in entries[:limit] if e.is_secret]
        await audit.record_reveal(session, namespace=namespace.name, keys=secrets, via="list")
    if len(entries) > limit:
        entries = entries[:limit]
        return entries, encode_cursor([entries[-1].key])
    return entries, None


async def _write(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    draft: EntryDraft | None,
    delete_key: str | None = None,
    message: str | None,
    if_match: str | None,
    if_none_match: str | None = None,
    must_exist: bool = False,
    must_not_exist: bool = False,
) -> tuple[ConfigEntry | None, bool]:
    """Write one entry under the namespace lock; answers the entry and whether it existed."""
    principal.require(Role.editor)
    # Locked first, then checked: one query for both (another tenant's is not found either way).
    namespace = await lock_namespace(
        session, tenant_id=principal.tenant_id, namespace_id=namespace_id
    )
    namespaces.check_allowed(principal, namespace, "write")
    key = draft.key if draft else (delete_key or "")
    current = await _entry(session, namespace.id, key)
    if if_none_match is not None and if_none_match.strip() == "*" and current is not None:
        raise PreconditionFailed(
            f"{key} already exists and If-None-Match: * refuses to overwrite it"
        )
    if must_not_exist and current is not None:
        raise Conflict(f"{key} already exists in {namespace.name}: use PUT or PATCH to change it")
    if must_exist and current is None:
        raise NotFound(f"no key {key} in namespace {namespace.name}")
    check_if_match(if_match, current)
    outcome = await commit_changes(
        session,
        policy=policy,
        tenant_id=principal.tenant_id,
        namespace_id=namespace.id,
        actor=principal.actor,
        upserts=[draft] if draft else [],
        deletes=[key] if delete_key else [],
        message=message,
        locked=namespace,
        current={key: current} if current is not None else {},
    )
    written = (outcome.written(key) or current) if draft else None  # unchanged: as it was
    return written, current is not None


async def create(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    payload: ConfigCreate,
    message: str | None,
    if_none_match: str | None,
) -> ConfigEntry:
    draft = EntryDraft(
        payload.key,
        payload.value,
        payload.value_type,
        payload.validation_schema,
        payload.description,
        payload.is_secret,
    )
    entry, _ = await _write(
        session,
        policy=policy,
        principal=principal,
        namespace_id=namespace_id,
        draft=draft,
        message=payload.message or message,
        if_match=None,
        if_none_match=if_none_match,
        must_not_exist=True,
    )
    return _must(entry)


async def replace_entry(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    payload: ConfigReplace,
    message: str | None,
    if_match: str | None,
    if_none_match: str | None,
) -> tuple[ConfigEntry, bool]:
    """Replace (or create) one entry; answers whether it was created."""
    draft = EntryDraft(
        key,
        payload.value,
        payload.value_type,
        payload.validation_schema,
        payload.description,
        payload.is_secret,
    )
    entry, existed = await _write(
        session,
        policy=policy,
        principal=principal,
        namespace_id=namespace_id,
        draft=draft,
        message=payload.message or message,
        if_match=if_match,
        if_none_match=if_none_match,
    )
    return _must(entry), not existed


async def patch(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    payload: ConfigPatch,
    message: str | None,
    if_match: str | None,
) -> ConfigEntry:
    """Change some fields; the result is validated whole, so a new schema re-checks the value."""
    current = await get(session, principal=principal, namespace_id=namespace_id, key=key)
    given = payload.model_fields_set
    value = payload.value if "value" in given else read_value(policy, current)
    draft = EntryDraft(
        key,
        value,
        current.value_type,
        current.validation_schema,
        current.description,
        current.is_secret,
    )
    changes = {
        name: getattr(payload, name)
        for name in ("value_type", "validation_schema", "description", "is_secret")
        if name in given and (getattr(payload, name) is not None or name == "validation_schema")
    }
    draft = replace(draft, **changes)
    entry, _ = await _write(
        session,
        policy=policy,
        principal=principal,
        namespace_id=namespace_id,
        draft=draft,
        message=payload.message or message,
        if_match=if_match,
        must_exist=True,
    )
    return _must(entry)


async def delete(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    message: str | None,
    if_match: str | None,
) -> None:
    await _write(
        session,
        policy=policy,
        principal=principal,
        namespace_id=namespace_id,
        draft=None,
        delete_key=key,
        message=message,
        if_match=if_match,
        must_exist=True,
    )


def render_page(
    policy: WritePolicy, entries: list[ConfigEntry], next_cursor: str | None, *, reveal: bool
) -> Page[ConfigRead]:
    return Page[ConfigRead](
        items=[render(policy, e, reveal=reveal) for e in entries], next_cursor=next_cursor
    )
