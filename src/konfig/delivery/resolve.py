"""Resolving a namespace: merging it over what it inherits.

The layers of a namespace N, lowest precedence first (DESIGN.md: includes < ancestors < N):

1. the includes of N's existing ancestors (farthest ancestor first) and then of N itself, each
   in its listed order, each contributing its own resolved layers (so including
   ``shared/production`` brings ``shared`` along);
2. N's existing path ancestors, farthest first (``payments`` before ``payments/eu``);
3. N itself.

A namespace reached twice keeps only its highest-precedence place, and one already being
expanded is skipped, so a namespace that includes its own descendant cannot loop. The last
layer to define a key wins.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.configs import references
from konfig.configs.references import Expander, Layered, ReferenceProblem
from konfig.configs.service import StoredValueCorrupt
from konfig.delivery import repository
from konfig.errors import Conflict
from konfig.revisions.writer import decrypt_value
from konfig.security.crypto import DecryptionError, Keyring


@dataclass(frozen=True, slots=True)
class Layer:
    id: uuid.UUID
    name: str
    includes: tuple[str, ...]
    revision: int


@dataclass(frozen=True, slots=True)
class Source:
    """Where a key's value came from: the namespace and the revision that wrote it there."""

    namespace: str
    revision: int


@dataclass(slots=True)
class Resolution:
    namespace_id: uuid.UUID
    name: str
    revision: int
    layers: list[Layer]
    values: dict[str, Any]  # ordered by key
    sources: dict[str, Source]
    overrides: dict[str, list[Source]] = field(default_factory=dict)
    # Keys secret in any layer that defines them: an override never unmasks a secret.
    secrets: frozenset[str] = frozenset()
    # The layers holding a secret entry: revealing needs the permission on each of them.
    secret_layers: tuple[str, ...] = ()
    # What this result depends on: every namespace read, and every name looked up (including
    # ancestors that do not exist yet, whose creation changes nothing until they hold entries).
    dep_ids: frozenset[uuid.UUID] = frozenset()
    dep_names: frozenset[str] = frozenset()
    # Every layer is the namespace or one of its path ancestors (no includes): whoever may read
    # the namespace may read the whole resolution (see ``Caller.admit``).
    inherits_only: bool = False
    # Keys whose value is a feature flag (value type ``flag`` in the layer it comes from).
    flags: frozenset[str] = frozenset()
    # Keys whose value holds references: every ``namespace:key`` it was built from, in order.
    references: dict[str, list[str]] = field(default_factory=dict)
    # Keys whose merged value may hold references (before expansion; empty after).
    mentions: frozenset[str] = frozenset()


def ancestors(name: str) -> list[str]:
    """``a/b/c`` → ``["a", "a/b"]``: farthest first."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def plan_layers(
    target: Layer, by_name: Mapping[str, Layer], by_id: Mapping[str, Layer]
) -> list[Layer]:
    """The layers of ``target``, lowest precedence first (see the module docstring)."""
    memo: dict[uuid.UUID, list[Layer]] = {}

    def expand(layer: Layer, stack: frozenset[uuid.UUID]) -> list[Layer]:
        if layer.id in memo:
            return memo[layer.id]
        chain = [by_name[a] for a in ancestors(layer.name) if a in by_name] + [layer]
        inside = stack | {member.id for member in chain}
        order: list[Layer] = []
        for member in chain:
            for include_id in member.includes:
                included = by_id.get(include_id)
                if included is not None and included.id not in inside:
                    order.extend(expand(included, inside))
        order.extend(chain)
        memo[layer.id] = order
        return order

    seen: set[uuid.UUID] = set()
    kept: list[Layer] = []
    for layer in reversed(expand(target, frozenset())):
        if layer.id not in seen:
            seen.add(layer.id)
            kept.append(layer)
    kept.reverse()
    return kept


def _wanted(layer: Layer) -> tuple[list[str], tuple[str, ...]]:
    """What a namespace's resolution also needs: its ancestors (by name), its includes (by id)."""
    return ancestors(layer.name), layer.includes


def _reach(
    name: str, by_name: Mapping[str, Layer], by_id: Mapping[str, Layer]
) -> tuple[set[str], set[uuid.UUID]]:
    """The names looked up and the namespaces read to resolve ``name``: what it depends on."""
    names = {*ancestors(name), name}
    ids: set[uuid.UUID] = set()
    pending = list(names)
    while pending:
        layer = by_name.get(pending.pop())
        if layer is None or layer.id in ids:
            continue
        ids.add(layer.id)
        for include_id in layer.includes:
            included = by_id.get(include_id)
            if included is not None and included.id not in ids:
                for needed in (*ancestors(included.name), included.name):
                    if needed not in names:
                        names.add(needed)
                        pending.append(needed)
                pending.append(included.name)
    return names, ids


async def _inherited(
    session: AsyncSession, tenant_id: uuid.UUID, targets: list[str]
) -> tuple[dict[str, Layer], dict[str, Layer]]:
    """Every namespace the targets may inherit from, by name and by id: a query per level of
    includes, however many targets."""
    by_name: dict[str, Layer] = {}
    by_id: dict[str, Layer] = {}
    asked_names: set[str] = set()
    asked_ids: set[str] = set()
    want_names = {needed for name in targets for needed in (*ancestors(name), name)}
    want_ids: set[str] = set()
    while True:
        names = want_names - asked_names
        ids = want_ids - asked_ids - by_id.keys()
        if not names and not ids:
            return by_name, by_id
        rows = await repository.namespaces(
            session, tenant_id=tenant_id, names=names, ids=[uuid.UUID(i) for i in ids]
        )
        asked_names |= names
        asked_ids |= ids
        for row_id, row_name, includes, revision in rows:
            layer = Layer(row_id, row_name, tuple(str(i) for i in includes or ()), revision)
            by_name[layer.name] = by_id[str(layer.id)] = layer
            more_names, more_ids = _wanted(layer)
            want_names.update(more_names)
            want_ids.update(more_ids)


async def load_many(
    session: AsyncSession,
    *,
    keyring: Keyring,
    tenant_id: uuid.UUID,
    names: list[str],
    expand: bool = True,
) -> dict[str, Resolution | None]:
    """The resolved configs of these namespaces (None for one that does not exist), with two or
    three queries in all: a change to a parent re-resolves all its children at once; their
    references expanded (``konfig.configs.references``) unless ``expand`` is False."""
    found = await _load_raw(session, keyring=keyring, tenant_id=tenant_id, names=names)
    if expand and any(r is not None and r.mentions for r in found.values()):
        pool = await referenced(session, keyring, tenant_id, found)
        for name, resolution in found.items():
            if resolution is not None and resolution.mentions:
                found[name] = _expanded(resolution, pool)
    return found


async def _load_raw(
    session: AsyncSession, *, keyring: Keyring, tenant_id: uuid.UUID, names: list[str]
) -> dict[str, Resolution | None]:
    by_name, by_id = await _inherited(session, tenant_id, names)
    plans = {name: plan_layers(by_name[name], by_name, by_id) for name in names if name in by_name}
    needed = {layer.id: layer for layers in plans.values() for layer in layers}
    rows = await repository.entries(session, tenant_id=tenant_id, namespace_ids=list(needed))
    values: dict[uuid.UUID, list[tuple[str, Any, int, bool, bool]]] = {}
    for namespace_id, key, ciphertext, revision, is_secret, value_type in rows:
        try:
            value = decrypt_value(keyring, tenant_id, namespace_id, key, ciphertext)
        except DecryptionError as exc:
            where = needed[namespace_id].name
            raise StoredValueCorrupt(
                f"the stored value of {key} in {where} failed its integrity check",
                {"key": key, "namespace": where},
            ) from exc
        entry = (key, value, revision, bool(is_secret), value_type == "flag")
        values.setdefault(namespace_id, []).append(entry)
    found: dict[str, Resolution | None] = dict.fromkeys(names)
    for name, layers in plans.items():
        dep_names, dep_ids = _reach(name, by_name, by_id)
        found[name] = _merge(by_name[name], layers, values, dep_names, dep_ids)
    return found


def _merge(
    target: Layer,
    layers: list[Layer],
    values: Mapping[uuid.UUID, list[tuple[str, Any, int, bool, bool]]],
    dep_names: set[str],
    dep_ids: set[uuid.UUID],
) -> Resolution:
    merged: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    overrides: dict[str, list[Source]] = {}
    secrets: set[str] = set()
    secret_layers: list[str] = []
    flags: set[str] = set()
    for layer in layers:
        for key, value, revision, is_secret, is_flag in values.get(layer.id, ()):
            if key in sources:
                overrides.setdefault(key, []).append(sources[key])
            merged[key] = value
            sources[key] = Source(layer.name, revision)
            if is_flag:
                flags.add(key)
            else:
                flags.discard(key)
            if is_secret:
                secrets.add(key)
                if layer.name not in secret_layers:
                    secret_layers.append(layer.name)
    return Resolution(
        mentions=frozenset(key for key, value in merged.items() if references.mentions(value)),
        namespace_id=target.id,
        name=target.name,
        revision=target.revision,
        layers=layers,
        values={key: merged[key] for key in sorted(merged)},
        sources=sources,
        overrides=overrides,
        secrets=frozenset(secrets),
        secret_layers=tuple(secret_layers),
        dep_ids=frozenset(dep_ids),
        dep_names=frozenset(dep_names),
        flags=frozenset(flags),
        inherits_only=all(
            layer.name == target.name or target.name.startswith(layer.name + "/")
            for layer in layers
        ),
    )


async def load(
    session: AsyncSession, *, keyring: Keyring, tenant_id: uuid.UUID, name: str
) -> Resolution | None:
    """The resolved config of the namespace ``name`` in the tenant, or None if there is none."""
    return (await load_many(session, keyring=keyring, tenant_id=tenant_id, names=[name]))[name]


# -- references -----------------------------------------------------------------------------


async def referenced(
    session: AsyncSession,
    keyring: Keyring,
    tenant_id: uuid.UUID,
    seed: Mapping[str, Resolution | None],
) -> dict[str, Resolution | None]:
    """``seed`` and, unexpanded, every namespace their references reach (a query round per
    link of the longest chain, at most ``MAX_DEPTH`` + 1)."""
    pool: dict[str, Resolution | None] = dict(seed)
    pending = dict(seed)
    for _ in range(references.MAX_DEPTH + 1):
        wanted: set[str] = set()
        for name, resolution in pending.items():
            if resolution is None:
                continue
            for key in resolution.mentions:
                try:
                    wanted |= references.targets(resolution.values[key], name)
                except ReferenceProblem:
                    continue  # reported when the key is expanded
        wanted -= pool.keys()
        if not wanted:
            break
        pending = await _load_raw(
            session, keyring=keyring, tenant_id=tenant_id, names=sorted(wanted)
        )
        pool.update(pending)
    return pool


def expander(pool: Mapping[str, Resolution | None]) -> Expander:
    def lookup(name: str) -> Layered | None:
        found = pool.get(name)
        return None if found is None else Layered(found.values, found.secrets)

    return Expander(lookup)


def _expanded(resolution: Resolution, pool: Mapping[str, Resolution | None]) -> Resolution:
    """``resolution`` with its references expanded; what they read joins what it depends on
    (a change there wakes it) and its layers (a reader must be allowed to read them)."""
    expanding = expander(pool)
    values = dict(resolution.values)
    chains: dict[str, list[str]] = {}
    secrets = set(resolution.secrets)
    secret_layers = list(resolution.secret_layers)
    read: set[str] = set()
    for key in sorted(resolution.mentions):
        try:
            found = expanding.key(resolution.name, key)
        except ReferenceProblem as exc:
            raise Conflict(
                f"{key} in {resolution.name} cannot be resolved: {exc.message}",
                {"key": key, "namespace": resolution.name, "chain": exc.chain},
            ) from exc
        if found is None:
            continue
        values[key] = found.value
        if found.chain:
            chains[key] = found.chain
        read |= found.namespaces
        if found.secret and key not in secrets:
            secrets.add(key)
            for name in sorted(found.namespaces) or [resolution.sources[key].namespace]:
                if name not in secret_layers:
                    secret_layers.append(name)
    layers = list(resolution.layers)
    dep_ids, dep_names = set(resolution.dep_ids), set(resolution.dep_names)
    known = {layer.name for layer in layers}
    for name in sorted(read):
        other = pool.get(name)
        if other is None:
            continue
        dep_ids |= other.dep_ids
        dep_names |= other.dep_names
        if name not in known:
            layers.append(Layer(other.namespace_id, name, (), other.revision))
    return dataclasses.replace(
        resolution,
        values=values,
        references=chains,
        secrets=frozenset(secrets),
        secret_layers=tuple(secret_layers),
        layers=layers,
        dep_ids=frozenset(dep_ids),
        dep_names=frozenset(dep_names | read),
        inherits_only=resolution.inherits_only and not read,
        mentions=frozenset(),
    )
