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
import bisect
import uuid
from collections.abc import Iterable, Iterator
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


_FIELD_END = "\x1f"  # after each field of an entry in the text searched
_ENTRY_END = "\x1e"  # after each entry


@dataclass(slots=True)
class Built:
    """The entries, and their lower-cased fields as one text: a search is one scan in C
    (``str.find``), whatever the tenant's size, then a bisection per match."""

    signature: tuple[Any, ...]
    entries: list[Indexed]
    text: str = ""
    starts: list[int] = default(default_factory=list)  # where each entry begins in ``text``

    def __post_init__(self) -> None:
        parts: list[str] = []
        position = 0
        for entry in self.entries:
            self.starts.append(position)
            segment = _FIELD_END.join(entry.folded) + _ENTRY_END
            parts.append(segment)
            position += len(segment)
        self.text = "".join(parts)

    def matches(self, needle: str) -> Iterator[tuple[Indexed, list[Field]]]:
        """Each entry holding ``needle`` in some field, in index order, with those fields."""
        found = self.text.find(needle)
        while found >= 0:
            index = bisect.bisect_right(self.starts, found) - 1
            entry = self.entries[index]
            fields = [n for n, f in zip(_FIELDS, entry.folded, strict=True) if needle in f]
            yield entry, fields
            following = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.text)
            found = self.text.find(needle, following)


@dataclass(slots=True)
class SearchIndex:
    """Per tenant, the entries as search reads them (``AppState.search_index``)."""

    built: dict[uuid.UUID, Built] = default(default_factory=dict)
    locks: dict[uuid.UUID, asyncio.Lock] = default(default_factory=dict)

    async def entries(self, session: AsyncSession, keyring: Keyring, tenant_id: uuid.UUID) -> Built:
        signature = await repository.signature(session, tenant_id=tenant_id)
        current = self.built.get(tenant_id)
        if current is not None and current.signature == signature:
            return current
        async with self.locks.setdefault(tenant_id, asyncio.Lock()):
            current = self.built.get(tenant_id)
            if current is not None and current.signature == signature:
                return current
            rows = await repository.entries(session, tenant_id=tenant_id)
            if len(rows) > _DECRYPT_IN_THREAD:
                built = await asyncio.to_thread(_build, keyring, tenant_id, signature, rows)
            else:
                built = _build(keyring, tenant_id, signature, rows)
            self.built[tenant_id] = built
            return built


def _build(
    keyring: Keyring, tenant_id: uuid.UUID, signature: tuple[Any, ...], rows: Iterable[Any]
) -> Built:
    return Built(signature, _index(keyring, tenant_id, rows))


def _plain(text: str) -> str:
    """Without the separators the index uses (a value may hold any character)."""
    return text.replace(_FIELD_END, " ").replace(_ENTRY_END, " ")


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
        folded = (key.lower(), (description or "").lower(), _plain(text))
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
    built = await index.entries(session, keyring, principal.tenant_id)
    may_read: dict[str, bool] = {}
    by_key: list[tuple[Indexed, list[Field]]] = []
    others: list[tuple[Indexed, list[Field]]] = []
    for entry, matched in built.matches(_plain(needle)):
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
