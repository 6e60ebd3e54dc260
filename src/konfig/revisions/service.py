"""History rules: every version of a key, revisions, snapshots, diffs and rollbacks.

Viewers read history; editors roll back and reveal secrets. A value is masked when its version
was secret or when the key is secret now, so marking a leaked value secret also hides its past.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.configs.guardrails import changed_rules, check_rules
from konfig.configs.models import ConfigEntry
from konfig.configs.schemas import MASK
from konfig.configs.service import StoredValueCorrupt, read_value
from konfig.configs.writes import check_if_match
from konfig.errors import NotFound, PreconditionFailed, ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.pagination import Page, by_number, paginate
from konfig.revisions import repository
from konfig.revisions.models import EntryVersion
from konfig.revisions.schemas import (
    Change,
    ChangeResult,
    DiffRead,
    EntryRollback,
    EntryVersionRead,
    NamespaceRollback,
    RevisionRead,
    SnapshotEntry,
    SnapshotRead,
)
from konfig.revisions.writer import (
    EntryDraft,
    WritePolicy,
    commit_changes,
    decrypt_value,
    lock_namespace,
)
from konfig.security.crypto import DecryptionError
from konfig.users.models import Role

# -- states and diffs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    """One key's content on one side of a diff."""

    value: Any
    value_type: str
    validation_schema: dict[str, Any] | None
    description: str
    is_secret: bool
    version: int | None = None

    @classmethod
    def of_draft(cls, draft: EntryDraft, version: int | None = None) -> State:
        return cls(
            draft.value,
            draft.value_type,
            draft.validation_schema,
            draft.description,
            draft.is_secret,
            version,
        )

    def draft(self, key: str) -> EntryDraft:
        return EntryDraft(
            key,
            self.value,
            self.value_type,
            self.validation_schema,
            self.description,
            self.is_secret,
        )


def differing_fields(old: State, new: State) -> list[str]:
    """What differs, compared the way the writer decides whether a key changed."""
    fields = []
    if orjson.dumps(old.value) != orjson.dumps(new.value):
        fields.append("value")
    if old.value_type != new.value_type:
        fields.append("value_type")
    if (old.validation_schema or None) != (new.validation_schema or None):
        fields.append("validation_schema")
    if old.description != new.description:
        fields.append("description")
    if old.is_secret != new.is_secret:
        fields.append("is_secret")
    return fields


# One side of a diff, as EntryState's fields: diffs are validated once, whole (a 10,000-key
# document's diff built one model at a time cost a fifth of its write).
Shown = Callable[[str, State], dict[str, Any]]


def shown_as(*, reveal: bool, secret_now: set[str]) -> Shown:
    def show(key: str, state: State) -> dict[str, Any]:
        masked = not reveal and (state.is_secret or key in secret_now)
        return {
            "value": MASK if masked else state.value,
            "value_type": state.value_type,
            "validation_schema": state.validation_schema,
            "description": state.description,
            "is_secret": state.is_secret,
            "version": state.version,
        }

    return show


def secret_keys(
    old: Mapping[str, State], new: Mapping[str, State], secret_now: set[str]
) -> list[str]:
    """The keys of a diff whose values are secret: a reveal shows them, and is audited."""
    return [
        key
        for key in old.keys() | new.keys()
        if key in secret_now
        or (key in old and old[key].is_secret)
        or (key in new and new[key].is_secret)
    ]


def diff_states(
    old: Mapping[str, State],
    new: Mapping[str, State],
    *,
    from_revision: int,
    to_revision: int | None,
    show: Shown,
) -> DiffRead:
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before is None and after is not None:
            added.append({"key": key, "old": None, "new": show(key, after), "fields": ["created"]})
        elif after is None and before is not None:
            removed.append(
                {"key": key, "old": show(key, before), "new": None, "fields": ["deleted"]}
            )
        elif before is not None and after is not None:
            fields = differing_fields(before, after)
            if fields:
                changed.append(
                    {
                        "key": key,
                        "old": show(key, before),
                        "new": show(key, after),
                        "fields": fields,
                    }
                )
    return DiffRead.model_validate(
        {
            "from_revision": from_revision,
            "to_revision": to_revision,
            "added": added,
            "removed": removed,
            "changed": changed,
        }
    )


def open_version(policy: WritePolicy, version: EntryVersion) -> Any:
    if version.value_ciphertext is None:
        return None
    try:
        return decrypt_value(
            policy.keyring,
            version.tenant_id,
            version.namespace_id,
            version.key,
            version.value_ciphertext,
        )
    except DecryptionError as exc:
        raise StoredValueCorrupt(
            f"version {version.version} of {version.key} failed its integrity check",
            {"key": version.key, "version": version.version},
        ) from exc


def state_of_version(policy: WritePolicy, version: EntryVersion) -> State:
    return State(
        open_version(policy, version),
        version.value_type,
        version.validation_schema,
        version.description,
        version.is_secret,
        version.version,
    )


def state_of_entry(policy: WritePolicy, entry: ConfigEntry) -> State:
    return State(
        read_value(policy, entry),
        entry.value_type,
        entry.validation_schema,
        entry.description,
        entry.is_secret,
        entry.version,
    )


# -- reading history ------------------------------------------------------------------------


def revision_etag(revision: int) -> str:
    return f'"{revision}"'


def check_revision_match(if_match: str | None, namespace: Namespace) -> None:
    """412 unless ``If-Match`` (when sent) names the namespace's current revision."""
    if if_match is None:
        return
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    if "*" not in tags and revision_etag(namespace.revision) not in tags:
        raise PreconditionFailed(
            f"namespace {namespace.name} is at revision {namespace.revision}, not the one in "
            "If-Match: read it again and reapply your change",
            {"current_revision": namespace.revision},
        )


def _check_revision(namespace: Namespace, revision: int) -> None:
    if revision > namespace.revision:
        raise NotFound(
            f"namespace {namespace.name} has no revision {revision} (its latest is "
            f"{namespace.revision})",
            {"latest_revision": namespace.revision},
        )


async def history(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    reveal: bool,
    cursor: str | None,
    limit: int,
) -> Page[EntryVersionRead]:
    """Every version of one key, newest first; deletions included."""
    namespace = await namespaces.get(
        session, principal=principal, namespace_id=namespace_id, reveal=reveal
    )
    versions, next_cursor = await paginate(
        cursor,
        limit,
        read=by_number,
        fetch=lambda before, count: repository.key_versions(
            session,
            tenant_id=namespace.tenant_id,
            namespace_id=namespace.id,
            key=key,
            before=before,
            limit=count,
        ),
        position=lambda version: [version.version],
    )
    if not versions and not cursor:
        raise NotFound(f"no key {key} in namespace {namespace.name}, now or in its history")
    secret = await repository.secret_now(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, keys=[key]
    )
    if reveal and (key in secret or any(v.is_secret for v in versions)):
        await audit.record_reveal(session, namespace=namespace.name, keys=[key], via="history")
    items = []
    for v in versions:
        masked = not reveal and (v.is_secret or key in secret)
        value = None if v.action == "delete" else MASK if masked else open_version(policy, v)
        items.append(
            EntryVersionRead(
                key=v.key,
                version=v.version,
                revision=v.revision,
                action=v.action,
                value=value,
                value_type=v.value_type,
                validation_schema=v.validation_schema,
                description=v.description,
                is_secret=v.is_secret,
                actor=v.actor,
                created_at=v.created_at,
            )
        )
    return Page[EntryVersionRead](items=items, next_cursor=next_cursor)


async def revisions(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> Page[RevisionRead]:
    """The namespace's revisions, newest first, each with what it changed key by key."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    found, next_cursor = await paginate(
        cursor,
        limit,
        read=by_number,
        fetch=lambda before, count: repository.revisions_page(
            session,
            tenant_id=namespace.tenant_id,
            namespace_id=namespace.id,
            before=before,
            limit=count,
        ),
        position=lambda revision: [revision.revision],
    )
    changes: dict[int, list[Change]] = {}
    for revision, key, version, action in await repository.written_by(
        session,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        revisions=[r.revision for r in found],
    ):
        changes.setdefault(revision, []).append(
            Change(
                key=key,
                action=action,
                old_version=None if action == "create" else version - 1,
                new_version=version,
            )
        )
    items = [
        RevisionRead(
            revision=r.revision,
            actor=r.actor,
            message=r.message,
            keys=list(r.keys),
            changes=changes.get(r.revision, []),
            created_at=r.created_at,
        )
        for r in found
    ]
    return Page[RevisionRead](items=items, next_cursor=next_cursor)


async def snapshot(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    revision: int,
    reveal: bool,
) -> SnapshotRead:
    """The whole namespace exactly as it was at ``revision`` (0: before its first change)."""
    namespace = await namespaces.get(
        session, principal=principal, namespace_id=namespace_id, reveal=reveal
    )
    _check_revision(namespace, revision)
    record = await repository.get_revision(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, revision=revision
    )
    live = await repository.snapshot(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, revision=revision
    )
    secret = await repository.secret_now(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, keys=list(live)
    )
    if reveal:
        await audit.record_reveal(
            session,
            namespace=namespace.name,
            keys=[v.key for v in live.values() if v.is_secret or v.key in secret],
            via=f"snapshot at revision {revision}",
        )
    entries = [
        SnapshotEntry(
            key=v.key,
            value=MASK
            if not reveal and (v.is_secret or v.key in secret)
            else open_version(policy, v),
            value_type=v.value_type,
            validation_schema=v.validation_schema,
            description=v.description,
            is_secret=v.is_secret,
            version=v.version,
            revision=v.revision,
            updated_by=v.actor,
            updated_at=v.created_at,
        )
        for v in live.values()
    ]
    return SnapshotRead(
        namespace_id=namespace.id,
        namespace=namespace.name,
        revision=revision,
        actor=record.actor if record else None,
        message=record.message if record else None,
        created_at=record.created_at if record else None,
        entries=entries,
    )


async def diff(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    from_revision: int,
    to_revision: int | None,
    reveal: bool,
) -> DiffRead:
    """What changed from one revision to another: only keys written in between are read."""
    namespace = await namespaces.get(
        session, principal=principal, namespace_id=namespace_id, reveal=reveal
    )
    to_revision = namespace.revision if to_revision is None else to_revision
    _check_revision(namespace, from_revision)
    _check_revision(namespace, to_revision)
    keys = await repository.keys_changed_between(
        session,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        low=min(from_revision, to_revision),
        high=max(from_revision, to_revision),
    )
    wanted: list[str] | None = keys if len(keys) <= 2000 else None
    before = await repository.snapshot(
        session,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        revision=from_revision,
        keys=wanted,
    )
    after = await repository.snapshot(
        session,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        revision=to_revision,
        keys=wanted,
    )
    old: dict[str, State] = {}
    new: dict[str, State] = {}
    for key in keys:
        a, b = before.get(key), after.get(key)
        if a is not None and b is not None and a.id == b.id:
            continue
        if a is not None:
            old[key] = state_of_version(policy, a)
        if b is not None:
            new[key] = state_of_version(policy, b)
    secret = await repository.secret_now(
        session,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        keys=list(old.keys() | new.keys()),
    )
    if reveal:
        await audit.record_reveal(
            session,
            namespace=namespace.name,
            keys=secret_keys(old, new, secret),
            via=f"diff {from_revision}..{to_revision}",
        )
    return diff_states(
        old,
        new,
        from_revision=from_revision,
        to_revision=to_revision,
        show=shown_as(reveal=reveal, secret_now=secret),
    )


# -- rollbacks ------------------------------------------------------------------------------


async def rollback_entry(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    key: str,
    payload: EntryRollback,
    message: str | None,
    if_match: str | None,
) -> ConfigEntry:
    """Write a new version of ``key`` equal to an old one (a deleted key comes back)."""
    principal.require(Role.editor)
    # Locked first, then checked: one query for both (another tenant's is not found either way).
    namespace = await lock_namespace(
        session, tenant_id=principal.tenant_id, namespace_id=namespace_id
    )
    namespaces.check_allowed(principal, namespace, "write")
    target = await repository.key_version(
        session,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        key=key,
        version=payload.version,
    )
    if target is None:
        raise NotFound(f"{key} has no version {payload.version} in namespace {namespace.name}")
    if target.action == "delete":
        raise ValidationFailed(
            f"version {payload.version} of {key} is its deletion: to delete the key, DELETE it",
            {"rule": "version", "key": key, "version": payload.version},
        )
    current = await repository.current_entry(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, key=key
    )
    check_if_match(if_match, current)
    restored = state_of_version(policy, target)
    if current is not None:  # bringing back older rules is changing the rules
        check_rules(principal, {key: changed_rules(current, restored)})
    outcome = await commit_changes(
        session,
        policy=policy,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        actor=principal.actor,
        upserts=[restored.draft(key)],
        message=payload.message or message or f"roll back {key} to version {payload.version}",
        locked=namespace,
        current={key: current} if current is not None else {},
    )
    entry = outcome.written(key) or current  # unchanged: as it was
    if entry is None:  # cannot happen: a version that is not a deletion writes the key
        raise NotFound(f"no key {key} in namespace {namespace.name}")
    return entry


async def rollback(
    session: AsyncSession,
    *,
    policy: WritePolicy,
    principal: Principal,
    namespace_id: uuid.UUID,
    payload: NamespaceRollback,
    message: str | None,
    if_match: str | None,
    dry_run: bool,
    reveal: bool,
) -> ChangeResult:
    """One new revision restoring the namespace as it was at ``payload.revision``."""
    principal.require(Role.editor)
    namespace = await namespaces.get(
        session,
        principal=principal,
        namespace_id=namespace_id,
        permission="write",
        reveal=reveal,
    )
    if not dry_run:
        namespace = await lock_namespace(
            session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
        )
    check_revision_match(if_match, namespace)
    _check_revision(namespace, payload.revision)
    target = await repository.snapshot(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id, revision=payload.revision
    )
    current = {
        e.key: e
        for e in await repository.entries(
            session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
        )
    }
    old: dict[str, State] = {}
    new: dict[str, State] = {}
    for key, version in target.items():
        entry = current.get(key)
        if entry is not None and entry.version == version.version:
            continue  # the very version that was live then
        new[key] = state_of_version(policy, version)
        if entry is not None:
            old[key] = state_of_entry(policy, entry)
    deletes = [key for key in current if key not in target]
    for key in deletes:
        old[key] = state_of_entry(policy, current[key])
    kept = sorted(new.keys() & current.keys())  # keys that exist now and change
    check_rules(principal, {key: changed_rules(current[key], new[key]) for key in kept})
    secret_now = {k for k, e in current.items() if e.is_secret}
    if reveal:
        await audit.record_reveal(
            session,
            namespace=namespace.name,
            keys=secret_keys(old, new, secret_now),
            via=f"rollback to revision {payload.revision}",
        )
    show = shown_as(reveal=reveal, secret_now=secret_now)
    previous = namespace.revision
    if dry_run:
        planned = diff_states(old, new, from_revision=previous, to_revision=None, show=show)
        return ChangeResult(
            namespace_id=namespace.id,
            revision=previous,
            previous_revision=previous,
            committed=False,
            dry_run=True,
            diff=planned,
        )
    outcome = await commit_changes(
        session,
        policy=policy,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        actor=principal.actor,
        upserts=[state.draft(key) for key, state in new.items()],
        deletes=deletes,
        message=payload.message or message or f"roll back to revision {payload.revision}",
        locked=namespace,
        current=current,  # every entry, read under the lock above
    )
    done = diff_states(old, new, from_revision=previous, to_revision=outcome.revision, show=show)
    return ChangeResult(
        namespace_id=namespace.id,
        revision=outcome.namespace.revision,
        previous_revision=previous,
        committed=outcome.revision is not None,
        dry_run=False,
        diff=done,
    )
