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
from konfig.configs.schemas import (
    KEPT_FIELDS,
    MASK,
    ConfigCreate,
    ConfigPatch,
    ConfigRead,
    ConfigReplace,
)
from konfig.configs.writes import EntryWrite, EntryWriter
from konfig.configs.writes import etag as etag  # re-exported
from konfig.errors import Forbidden, KonfigError, NotFound
from konfig.namespaces import service as namespaces
from konfig.pagination import Page, by_text, paginate
from konfig.revisions.writer import EntryDraft, WritePolicy, decrypt_value
from konfig.security.crypto import DecryptionError
from konfig.users.models import Role


class StoredValueCorrupt(KonfigError):
    code, status_code = "INTERNAL", 500


def _must(entry: ConfigEntry | None) -> ConfigEntry:
    if entry is None:  # a create, replace or patch always leaves the key
        raise RuntimeError("an entry written by this request is missing")
    return entry


def may_reveal(principal: Principal, reveal: bool) -> bool:
    """``reveal``, when the principal may see secrets (editors and above; tokens holding the
    ``secrets`` permission); a 403 naming what is missing otherwise."""
    if reveal and not principal.may_see_secrets():
        if principal.kind == "token":
            raise Forbidden("this token lacks the secrets permission: it reads secrets masked")
        principal.require_somewhere(Role.editor)
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
    namespace = await namespaces.get(
        session, principal=principal, namespace_id=namespace_id, reveal=reveal
    )
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
    namespace = await namespaces.get(
        session, principal=principal, namespace_id=namespace_id, reveal=reveal
    )

    async def fetch(after: str | None, count: int) -> list[ConfigEntry]:
        query = (
            select(ConfigEntry)
            .where(ConfigEntry.namespace_id == namespace.id)
            .order_by(ConfigEntry.key)
            .limit(count)
        )
        if after is not None:
            query = query.where(ConfigEntry.key > after)
        return list((await session.execute(query)).scalars())

    entries, next_cursor = await paginate(
        cursor, limit, read=by_text, fetch=fetch, position=lambda entry: [entry.key]
    )
    if reveal:
        secrets = [e.key for e in entries if e.is_secret]
        await audit.record_reveal(session, namespace=namespace.name, keys=secrets, via="list")
    return entries, next_cursor


def _draft(key: str, payload: ConfigCreate | ConfigReplace) -> EntryDraft:
    return EntryDraft(
        key,
        payload.value,
        payload.value_type,
        payload.validation_schema,
        payload.description,
        payload.is_secret,
    )


async def create(
    session: AsyncSession | None,
    *,
    writer: EntryWriter,
    principal: Principal,
    namespace_id: uuid.UUID,
    payload: ConfigCreate,
    message: str | None,
    if_none_match: str | None,
) -> ConfigEntry:
    written = await writer.write(
        session,
        EntryWrite(
            principal=principal,
            namespace_id=namespace_id,
            key=payload.key,
            draft=_draft(payload.key, payload),
            message=payload.message or message,
            if_none_match=if_none_match,
            must_not_exist=True,
        ),
    )
    return _must(written.entry)


async def replace_entry(
    session: AsyncSession | None,
    *,
    writer: EntryWriter,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    payload: ConfigReplace,
    message: str | None,
    if_match: str | None,
    if_none_match: str | None,
) -> tuple[ConfigEntry, bool]:
    """Replace the value of an entry, or create it; answers whether it was created.

    What the body leaves out of an existing entry keeps its current setting: only a field sent
    changes it (``"is_secret": false`` is the one way a PUT makes a secret plain)."""
    written = await writer.write(
        session,
        EntryWrite(
            principal=principal,
            namespace_id=namespace_id,
            key=key,
            draft=_draft(key, payload),
            keep=frozenset(KEPT_FIELDS - payload.model_fields_set),
            message=payload.message or message,
            if_match=if_match,
            if_none_match=if_none_match,
        ),
    )
    return _must(written.entry), not written.existed


async def patch(
    session: AsyncSession | None,
    *,
    writer: EntryWriter,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    payload: ConfigPatch,
    message: str | None,
    if_match: str | None,
) -> ConfigEntry:
    """Change the fields sent; the result is validated whole, so a new schema re-checks the
    value."""
    given = payload.model_fields_set
    changes = {
        name: getattr(payload, name)
        for name in KEPT_FIELDS
        if name in given and (getattr(payload, name) is not None or name == "validation_schema")
    }

    def patched(current: ConfigEntry) -> EntryDraft:
        value = payload.value if "value" in given else read_value(writer.policy, current)
        draft = EntryDraft(
            key,
            value,
            current.value_type,
            current.validation_schema,
            current.description,
            current.is_secret,
        )
        return replace(draft, **changes)  # validated whole by the writer

    written = await writer.write(
        session,
        EntryWrite(
            principal=principal,
            namespace_id=namespace_id,
            key=key,
            patch=patched,
            value=payload.value if "value" in given else None,
            message=payload.message or message,
            if_match=if_match,
        ),
    )
    return _must(written.entry)


async def delete(
    session: AsyncSession | None,
    *,
    writer: EntryWriter,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    message: str | None,
    if_match: str | None,
) -> None:
    await writer.write(
        session,
        EntryWrite(
            principal=principal,
            namespace_id=namespace_id,
            key=key,
            message=message,
            if_match=if_match,
            must_exist=True,
        ),
    )


def render_page(
    policy: WritePolicy, entries: list[ConfigEntry], next_cursor: str | None, *, reveal: bool
) -> Page[ConfigRead]:
    return Page[ConfigRead](
        items=[render(policy, e, reveal=reveal) for e in entries], next_cursor=next_cursor
    )
