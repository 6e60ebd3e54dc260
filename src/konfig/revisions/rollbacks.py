"""Rollbacks: one key back to an old version, or the whole namespace to an old revision.

Either is a new revision written through ``commit_changes`` (history stays append-only), by an
editor; bringing back older rules is changing the rules, so the guardrails check it like any
other write. A namespace rollback can be a dry run that answers the diff it would commit.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.configs.guardrails import changed_rules, check_rules
from konfig.configs.models import ConfigEntry
from konfig.configs.writes import check_if_match
from konfig.errors import NotFound, ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.revisions import repository
from konfig.revisions.schemas import ChangeResult, EntryRollback, NamespaceRollback
from konfig.revisions.service import check_revision, check_revision_match
from konfig.revisions.states import (
    State,
    diff_states,
    secret_keys,
    shown_as,
    state_of_entry,
    state_of_version,
)
from konfig.revisions.writer import Proposed, WritePolicy, commit_changes, lock_namespace
from konfig.users.models import Role


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
    principal.require_somewhere(Role.editor)
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
        check_rules(principal, namespace.name, {key: changed_rules(current, restored)})
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
        principal=principal,
    )
    if outcome.proposal is not None:
        raise Proposed(outcome.proposal)
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
    principal.require_somewhere(Role.editor)
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
    check_revision(namespace, payload.revision)
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
    check_rules(
        principal, namespace.name, {key: changed_rules(current[key], new[key]) for key in kept}
    )
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
        principal=principal,
    )
    done = diff_states(old, new, from_revision=previous, to_revision=outcome.revision, show=show)
    return ChangeResult(
        namespace_id=namespace.id,
        revision=outcome.namespace.revision,
        previous_revision=previous,
        committed=outcome.revision is not None,
        dry_run=False,
        diff=done,
        change_request=outcome.proposal,
    )
