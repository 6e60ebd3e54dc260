"""Comparing namespaces key by key, and copying values from one to another.

A comparison reads each namespace's own entries (raw) or what a service receives from it
(resolved: merged over its ancestors and includes). Secrets are never revealed here: each one
is compared by a keyed fingerprint of its plaintext (``Keyring.fingerprint``, bound to the
tenant), so "same secret / different secret" shows without the value.

A copy writes the chosen keys' values from the source into the target as one revision, through
the same planner as documents and imports (``konfig.revisions.documents.apply``): a dry run is
the review, and the real run may insist the target has not moved since (``expected_revision``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.auth.principal import Principal
from konfig.configs.schemas import MASK
from konfig.configs.service import StoredValueCorrupt
from konfig.configs.types import Problem
from konfig.delivery import repository as delivery_repository
from konfig.delivery import resolve
from konfig.environments.schemas import (
    ComparedCell,
    ComparedKey,
    ComparedNamespace,
    ComparisonRead,
    ComparisonSummary,
    CopyRequest,
    RowStatus,
)
from konfig.errors import Forbidden, NotFound, ValidationFailed
from konfig.namespaces import repository as namespace_repository
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.revisions import documents
from konfig.revisions.schemas import ChangeResult
from konfig.revisions.service import check_revision_match, revision_etag
from konfig.revisions.states import Builder, State
from konfig.revisions.values import decrypt_value
from konfig.revisions.writer import EntryDraft, WritePolicy, lock_namespace
from konfig.security.crypto import DecryptionError, Keyring
from konfig.users.models import Role

MAX_COMPARED = 10


@dataclass(frozen=True, slots=True)
class Seen:
    """One key's value in one namespace, as compared."""

    value: Any
    secret: bool
    value_type: str | None
    source: str | None


def parse_names(raw: str) -> list[str]:
    """``a,b`` → ``["a", "b"]``: two to ten distinct namespace names."""
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if len(names) < 2:
        raise ValidationFailed(
            "namespaces: name at least two namespaces to compare, separated by commas",
            {"field": "namespaces"},
        )
    if len(names) > MAX_COMPARED:
        raise ValidationFailed(
            f"namespaces: at most {MAX_COMPARED} namespaces can be compared at once",
            {"field": "namespaces", "max": MAX_COMPARED},
        )
    if len(set(names)) != len(names):
        raise ValidationFailed("namespaces: a namespace is named twice", {"field": "namespaces"})
    return names


async def readable(
    session: AsyncSession, principal: Principal, names: list[str], permission: str = "read"
) -> list[Namespace]:
    """The namespaces named so, each one the caller may read: 404 naming the unknown ones."""
    principal.require(Role.viewer)
    found = await namespace_repository.by_names(session, tenant_id=principal.tenant_id, names=names)
    missing = [name for name in names if name not in found]
    if missing:
        raise NotFound(
            f"no namespace named {', '.join(missing)} in this organisation",
            {"namespaces": missing},
        )
    for name in names:
        namespaces.check_allowed(principal, found[name], "read")
    return [found[name] for name in names]


def _covered(layer: str, allowed: list[str]) -> bool:
    prefix = layer + "/"
    return any(name == layer or name.startswith(prefix) for name in allowed)


async def _raw(
    session: AsyncSession, keyring: Keyring, found: list[Namespace]
) -> dict[str, dict[str, Seen]]:
    """Each namespace's own entries, decrypted: one query for them all."""
    names = {ns.id: ns.name for ns in found}
    seen: dict[str, dict[str, Seen]] = {ns.name: {} for ns in found}
    tenant_id = found[0].tenant_id
    rows = await delivery_repository.entries(session, tenant_id=tenant_id, namespace_ids=names)
    for namespace_id, key, ciphertext, _revision, is_secret, value_type in rows:
        try:
            value = decrypt_value(keyring, tenant_id, namespace_id, key, ciphertext)
        except DecryptionError as exc:
            raise StoredValueCorrupt(
                f"the stored value of {key} in {names[namespace_id]} failed its integrity check",
                {"key": key, "namespace": names[namespace_id]},
            ) from exc
        seen[names[namespace_id]][key] = Seen(value, bool(is_secret), value_type, None)
    return seen


async def _resolved(
    session: AsyncSession, principal: Principal, keyring: Keyring, found: list[Namespace]
) -> dict[str, dict[str, Seen]]:
    names = [ns.name for ns in found]
    resolutions = await resolve.load_many(
        session, keyring=keyring, tenant_id=principal.tenant_id, names=names
    )
    seen: dict[str, dict[str, Seen]] = {}
    for name in names:
        resolution = resolutions[name]
        if resolution is None:  # deleted a moment ago
            raise NotFound(f"no namespace named {name} in this organisation")
        layers = [layer.name for layer in resolution.layers]
        allowed = [layer for layer in layers if principal.allows(layer, "read")]
        for layer in layers:
            if not _covered(layer, allowed):
                raise Forbidden(
                    f"you may not read namespace {layer}, which {name} inherits from: a "
                    "resolved comparison draws only on namespaces you may read",
                    {"namespace": layer},
                )
        seen[name] = {
            key: Seen(value, key in resolution.secrets, None, resolution.sources[key].namespace)
            for key, value in resolution.values.items()
        }
    return seen


def _status(prints: list[bytes | None]) -> RowStatus:
    if any(p is None for p in prints):
        return "missing"
    return "same" if len(set(prints)) == 1 else "different"


async def compare(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    names: list[str],
    resolved: bool,
    only_differences: bool = False,
) -> ComparisonRead:
    """The keys of these namespaces side by side, each row marked same, different or missing."""
    found = await readable(session, principal, names)
    if resolved:
        by_name = await _resolved(session, principal, policy.keyring, found)
    else:
        by_name = await _raw(session, policy.keyring, found)
    keys = sorted({key for values in by_name.values() for key in values})
    rows: list[ComparedKey] = []
    counts = {"same": 0, "different": 0, "missing": 0}
    for key in keys:
        cells: list[ComparedCell] = []
        prints: list[bytes | None] = []  # equal exactly when the values are equal
        for ns in found:
            seen = by_name[ns.name].get(key)
            if seen is None:
                cells.append(ComparedCell(present=False))
                prints.append(None)
                continue
            canonical = orjson.dumps(seen.value, option=orjson.OPT_SORT_KEYS)
            prints.append(canonical)
            mark = None
            if seen.secret:  # a keyed tag stands in for the value, which is never shown
                mark = policy.keyring.fingerprint(principal.tenant_id.bytes + canonical)
            cells.append(
                ComparedCell(
                    present=True,
                    value=MASK if seen.secret else seen.value,
                    value_type=seen.value_type,
                    secret=seen.secret,
                    fingerprint=mark,
                    source=seen.source,
                )
            )
        status = _status(prints)
        counts[status] += 1
        if not (only_differences and status == "same"):
            rows.append(ComparedKey(key=key, status=status, cells=cells))
    return ComparisonRead(
        namespaces=[
            ComparedNamespace(id=ns.id, name=ns.name, revision=ns.revision) for ns in found
        ],
        resolved=resolved,
        keys=rows,
        summary=ComparisonSummary(**counts),
    )


def _copy_builder(source: dict[str, State], keys: list[str]) -> Builder:
    """Drafts that give each key the source's value. A key the target already has keeps its own
    rules (type, schema, description), so the value is checked against the target's contract;
    a new key comes with the source's. A secret stays secret on either side."""

    def build(current: dict[str, State]) -> tuple[list[EntryDraft], dict[str, list[Problem]]]:
        drafts = []
        for key in keys:
            copied = source[key]
            held = current.get(key)
            if held is None:
                drafts.append(copied.draft(key))
            else:
                secret = held.is_secret or copied.is_secret
                drafts.append(replace(held.draft(key), value=copied.value, is_secret=secret))
        return drafts, {}

    return build


def _message(keys: list[str], source: str) -> str:
    named = ", ".join(keys)
    if len(named) > 200:
        named = f"{len(keys)} keys"
    return f"copy {named} from {source}"


async def copy(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    request: CopyRequest,
    dry_run: bool,
) -> ChangeResult:
    """Copy keys' values from ``source`` into ``target`` as one revision (a dry run: the diff)."""
    principal.require_somewhere(Role.editor)
    if request.source == request.target:
        raise ValidationFailed(
            "target: copying a namespace onto itself changes nothing; pick another target",
            {"field": "target"},
        )
    keys = list(dict.fromkeys(request.keys))
    source, target = await readable(session, principal, [request.source, request.target])
    namespaces.check_allowed(principal, target, "write")
    held = await documents.current_states(session, policy, source)
    absent = [key for key in keys if key not in held]
    if absent:
        raise ValidationFailed(
            f"keys: {', '.join(absent)} not set in {source.name} itself (an inherited value "
            "is copied from the namespace that sets it)",
            {"field": "keys", "missing": absent, "namespace": source.name},
        )
    if any(held[key].is_secret for key in keys):
        namespaces.check_allowed(principal, source, "secrets")
    if not dry_run:
        target = await lock_namespace(session, tenant_id=target.tenant_id, namespace_id=target.id)
    if request.expected_revision is not None:
        check_revision_match(revision_etag(request.expected_revision), target)
    return await documents.apply(
        session,
        policy=policy,
        namespace=target,
        actor=principal.actor,
        build=_copy_builder(held, keys),
        replace=False,
        dry_run=dry_run,
        message=request.message or _message(keys, source.name),
        reveal=False,
        principal=principal,
    )
