"""The write-time check of references (``konfig.configs.references``): every write path asks it,
through ``WritePolicy.check_references``, before a value holding references commits, and
before a deletion that other namespaces' references may need.

The namespace is resolved as the write would leave it (its stored entries with the write's
values laid over them), then each written value is expanded exactly as a read would: a missing
target without a default, a cycle, a chain deeper than ten or a malformed reference is a 422
that names the chain. A reference to a namespace the writer may not read is refused too, so
nobody copies, through a reference, what they could not read themselves. Deleting a key that
a value references (without a default) is refused, naming the referrer: another namespace's
value, the namespace's own, or one that reads it through a namespace below it or including it,
which loses what it passed down. So is deleting a whole namespace, naming every referring key
(a 409, as for a namespace others include): the namespace is already gone in the deleting
session, so its children, which lose what it passed down, are re-resolved exactly as they will
read.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from konfig.configs import references
from konfig.configs.references import NamespaceDrop, ReferenceProblem, ReferenceWrite
from konfig.db.session import bind_tenant, open_session
from konfig.delivery import repository, resolve
from konfig.delivery.resolve import Resolution
from konfig.errors import Conflict, NotFound, ValidationFailed
from konfig.security.crypto import Keyring

_SHOWN = 5  # referring keys a refused namespace deletion names in its message (details: all)


class ReferenceChecker:
    """``WritePolicy.reference_checks``' member for this app."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.sessionmaker: async_sessionmaker[AsyncSession] | None = None  # set at start

    async def __call__(
        self, session: AsyncSession | None, write: ReferenceWrite | NamespaceDrop
    ) -> None:
        if isinstance(write, NamespaceDrop):
            if session is None:  # only the deleting session sees the namespace gone
                raise RuntimeError("a namespace's deletion is checked in its own session")
            await check_drop(session, self.keyring, write)
            return
        if session is not None:
            await check(session, self.keyring, write)
            return
        if self.sessionmaker is None:
            raise RuntimeError("the app's lifespan has not started")
        own = await open_session(self.sessionmaker, write=False)
        try:
            await bind_tenant(own, write.tenant_id)
            await check(own, self.keyring, write)
        finally:
            await own.close()


def _refused(key: str, message: str, chain: list[str], rule: str) -> ValidationFailed:
    return ValidationFailed(
        f"{key}: {message}",
        {"key": key, "rule": "reference", "problem": rule, "chain": chain},
    )


def _without(resolution: Resolution, owner: str, keys: Collection[str]) -> Resolution:
    """``resolution`` once ``owner`` no longer holds ``keys``: a key it was the source of goes,
    unless a layer below it holds one too (that layer's value then shows through; the current
    one stands in for it, as only whether the key resolves is asked)."""
    values: dict[str, Any] = dict(resolution.values)
    for key in keys:
        source = resolution.sources.get(key)
        if source is not None and source.namespace == owner and not resolution.overrides.get(key):
            values.pop(key, None)
    mentions = frozenset(k for k, v in values.items() if references.mentions(v))
    return dataclasses.replace(resolution, values=values, mentions=mentions)


def _overlaid(resolution: Resolution, write: ReferenceWrite) -> Resolution:
    left = _without(resolution, resolution.name, write.deleted)
    values = {**left.values, **write.values}
    mentions = frozenset(k for k, v in values.items() if references.mentions(v))
    return dataclasses.replace(left, values=values, mentions=mentions)


async def check(session: AsyncSession, keyring: Keyring, write: ReferenceWrite) -> None:
    """Raise ``ValidationFailed`` naming the chain unless every written reference resolves."""
    rows = await repository.namespaces(
        session, tenant_id=write.tenant_id, names=(), ids=[write.namespace_id]
    )
    if not rows:
        raise NotFound(f"no namespace {write.namespace_id}")
    name = rows[0][1]
    loaded = await resolve.load_many(
        session, keyring=keyring, tenant_id=write.tenant_id, names=[name], expand=False
    )
    current = loaded[name]
    if current is None:
        raise NotFound(f"no namespace {name}")
    target = _overlaid(current, write)
    written = sorted(key for key in write.values if references.mentions(write.values[key]))
    for key in written:
        try:
            named = references.targets(write.values[key], name)
        except ReferenceProblem as exc:
            raise _refused(key, exc.message, exc.chain, exc.rule) from exc
        for other in sorted(named - {name}):
            if write.principal is not None and not write.principal.allows(other, "read"):
                raise _refused(
                    key,
                    f"it references namespace {other}, which you may not read "
                    f"(chain: {name}:{key} → {other})",
                    [f"{name}:{key}", other],
                    "forbidden",
                )
    if written:
        pool = await resolve.referenced(session, keyring, write.tenant_id, {name: target})
        expanding = resolve.expander(pool)
        for key in written:
            try:
                expanding.key(name, key)
            except ReferenceProblem as exc:
                raise _refused(key, exc.message, exc.chain, exc.rule) from exc
    if write.deleted:
        await _still_resolved(session, keyring, write, name, target)


async def _still_resolved(
    session: AsyncSession, keyring: Keyring, write: ReferenceWrite, name: str, target: Resolution
) -> None:
    """A deletion must leave resolvable every value that reads a key it takes away: the
    namespace's own, its heirs' (below it or including it: they lose what it passed down) and
    those of every namespace that references one of them. A reference that was already broken
    elsewhere is not this deletion's to answer for."""
    tenant_id = write.tenant_id
    heirs = await repository.heirs(
        session, tenant_id=tenant_id, name=name, namespace_id=write.namespace_id
    )
    replacing = {name: target}
    if heirs:
        loaded = await resolve.load_many(
            session, keyring=keyring, tenant_id=tenant_id, names=heirs, expand=False
        )
        for heir, resolution in loaded.items():
            if resolution is not None:
                replacing[heir] = _without(resolution, name, write.deleted)
    lost = {
        f"{other}:{key}"
        for other, resolution in replacing.items()
        for key in write.deleted
        if key not in resolution.values
    }
    if not lost:
        return
    others = await repository.referrers(session, tenant_id=tenant_id, names=list(replacing))
    checked = sorted({*replacing, *others})
    for other, key, exc in await _unresolved(
        session, keyring, tenant_id, checked, replacing=replacing
    ):
        if exc.chain and exc.chain[-1] in lost:
            gone = exc.chain[-1].rpartition(":")[2]
            raise ValidationFailed(
                f"{gone}: {other}:{key} references it, so it cannot be deleted ({exc.message})",
                {"key": gone, "rule": "reference", "problem": "referenced", "chain": exc.chain},
            ) from exc


async def _unresolved(
    session: AsyncSession,
    keyring: Keyring,
    tenant_id: uuid.UUID,
    names: list[str],
    *,
    replacing: Mapping[str, Resolution] | None = None,
) -> list[tuple[str, str, ReferenceProblem]]:
    """Every key of ``names`` whose references no longer resolve as ``session`` sees the
    tenant (``replacing``: namespaces to take as given instead, a write not yet stored)."""
    if not names:
        return []
    given = replacing or {}
    loaded: dict[str, Resolution | None] = dict(given)
    stored = [n for n in names if n not in given]
    if stored:
        loaded.update(
            await resolve.load_many(
                session, keyring=keyring, tenant_id=tenant_id, names=stored, expand=False
            )
        )
    pool = await resolve.referenced(session, keyring, tenant_id, loaded)
    expanding = resolve.expander(pool)
    problems: list[tuple[str, str, ReferenceProblem]] = []
    for other in names:
        resolution = loaded.get(other)
        for key in sorted(resolution.mentions if resolution is not None else ()):
            try:
                expanding.key(other, key)
            except ReferenceProblem as exc:
                problems.append((other, key, exc))
    return problems


async def check_drop(session: AsyncSession, keyring: Keyring, drop: NamespaceDrop) -> None:
    """Raise ``Conflict`` naming every other namespace's key whose references no longer resolve
    now that ``drop.name`` is gone (in ``session``): those that name it or a namespace below
    it, and its children's, which lose what it passed down."""
    tenant_id = drop.tenant_id
    named = await repository.referrers(session, tenant_id=tenant_id, names=[drop.name], under=True)
    children = await repository.names_under(session, tenant_id=tenant_id, name=drop.name)
    others = sorted({*named, *children})
    broken = [
        {"namespace": other, "key": key, "problem": exc.rule, "chain": exc.chain}
        for other, key, exc in await _unresolved(session, keyring, tenant_id, others)
    ]
    if not broken:
        return
    links = [f"{b['namespace']}:{b['key']}" for b in broken]
    shown = ", ".join(links[:_SHOWN])
    if len(links) > _SHOWN:
        shown += f" and {len(links) - _SHOWN} more"
    raise Conflict(
        f"namespace {drop.name}: {shown} reference{'s' if len(links) == 1 else ''} it, so it "
        "cannot be deleted (remove those references or give them a default first)",
        {
            "namespace": drop.name,
            "rule": "reference",
            "problem": "referenced",
            "referrers": sorted({b["namespace"] for b in broken}),
            "references": broken,
        },
    )
