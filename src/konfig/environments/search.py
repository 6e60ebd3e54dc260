"""Search over a tenant's keys: names, descriptions and non-secret values.

Values are encrypted at rest, so the database cannot search them. Each replica keeps, per
tenant, an index of every entry's key, description and (non-secret) value text, built on the
first search and rebuilt when the tenant's namespaces' signature (``repository.signature``: a
query over the namespaces alone) shows a change, so every replica answers from the current
state. Secret values never enter the index. A hit is shown only when the caller may read its
namespace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any, Literal
from urllib.parse import quote

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.auth.principal import Principal
from konfig.configs.schemas import MASK
from konfig.environments import repository
from konfig.environments.schemas import SearchHit, SearchRead
from konfig.errors import ValidationFailed
from konfig.revisions.values import decrypt_value
from konfig.security.crypto import DecryptionError, Keyring
from konfig.users.models import Role

_DECRYPT_IN_THREAD = 2000  # entries: a larger index is built off the event loop
MAX_QUERY = 200


@dataclass(frozen=True, slots=True)
class Indexed:
    namespace_id: uuid.UUID
    namespace: str
    key: str
    description: str
    secret: bool
    value: Any
    folded: tuple[str, str, str]  # key, description, value text, lower-cased


@dataclass(slots=True)
class Built:
    signature: tuple[Any, ...]
    entries: list[Indexed]


@dataclass(slots=True)
class SearchIndex:
    """Per tenant, the entries as search reads them (``AppState.search_index``)."""

    built: dict[uuid.UUID, Built] = default(default_factory=dict)
    locks: dict[uuid.UUID, asyncio.Lock] = default(default_factory=dict)

    async def entries(
        self, session: AsyncSession, keyring: Keyring, tenant_id: uuid.UUID
    ) -> list[Indexed]:
        signature = await repository.signature(session, tenant_id=tenant_id)
        current = self.built.get(tenant_id)
        if current is not None and current.signature == signature:
            return current.entries
        async with self.locks.setdefault(tenant_id, asyncio.Lock()):
            current = self.built.get(tenant_id)
            if current is not None and current.signature == signature:
                return current.entries
            rows = await repository.entries(session, tenant_id=tenant_id)
            if len(rows) > _DECRYPT_IN_THREAD:
                indexed = await asyncio.to_thread(_index, keyring, tenant_id, rows)
            else:
                indexed = _index(keyring, tenant_id, rows)
            self.built[tenant_id] = Built(signature, indexed)
            return indexed


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _index(keyring: Keyring, tenant_id: uuid.UUID, rows: Iterable[Any]) -> list[Indexed]:
    indexed = []
    for namespace_id, namespace, key, description, secret, ciphertext in rows:
        value: Any = MASK
        text = ""
        if not secret:
            try:
                value = decrypt_value(keyring, tenant_id, namespace_id, key, ciphertext)
                text = _text(value).lower()
            except DecryptionError:
                value = None  # a corrupt value is reported where it is read, not here
        folded = (key.lower(), (description or "").lower(), text)
        indexed.append(
            Indexed(namespace_id, namespace, key, description or "", bool(secret), value, folded)
        )
    return indexed


Field = Literal["key", "description", "value"]
_FIELDS: tuple[Field, ...] = ("key", "description", "value")


async def search(
    session: AsyncSession,
    *,
    index: SearchIndex,
    keyring: Keyring,
    principal: Principal,
    q: str,
    limit: int,
) -> SearchRead:
    """Entries whose key, description or non-secret value contains ``q`` (any case), in the
    namespaces the caller may read; key matches first."""
    principal.require(Role.viewer)
    needle = q.strip().lower()
    if not needle:
        raise ValidationFailed("q: say what to search for", {"field": "q"})
    if len(needle) > MAX_QUERY:
        raise ValidationFailed(
            f"q: at most {MAX_QUERY} characters", {"field": "q", "max": MAX_QUERY}
        )
    entries = await index.entries(session, keyring, principal.tenant_id)
    may_read: dict[str, bool] = {}
    by_key: list[tuple[Indexed, list[Field]]] = []
    others: list[tuple[Indexed, list[Field]]] = []
    for entry in entries:
        matched = [name for name, text in zip(_FIELDS, entry.folded, strict=True) if needle in text]
        if not matched:
            continue
        allowed = may_read.get(entry.namespace)
        if allowed is None:
            allowed = may_read[entry.namespace] = principal.allows(entry.namespace, "read")
        if not allowed:
            continue
        (by_key if "key" in matched else others).append((entry, matched))
    hits = by_key + others
    return SearchRead(
        q=q.strip(),
        items=[_hit(entry, matched) for entry, matched in hits[:limit]],
        total=len(hits),
        namespaces=len({entry.namespace_id for entry, _ in hits}),
    )


def _hit(entry: Indexed, matched: list[Field]) -> SearchHit:
    key = quote(entry.key, safe="")
    return SearchHit(
        namespace=entry.namespace,
        namespace_id=entry.namespace_id,
        key=entry.key,
        matched=matched,
        description=entry.description,
        value=entry.value,
        secret=entry.secret,
        link=f"/ui/namespaces/{entry.namespace_id}/entries/{key}",
        api=f"/api/v1/namespaces/{entry.namespace_id}/configs/{key}",
    )
