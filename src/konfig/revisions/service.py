"""History reads: every version of a key, revisions, snapshots and diffs.

Viewers read history; editors reveal secrets. A value is masked when its version was secret or
when the key is secret now, so marking a leaked value secret also hides its past. Rollbacks are
in ``konfig.revisions.rollbacks``, whole-namespace writes in ``konfig.revisions.documents``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.configs.schemas import MASK
from konfig.errors import NotFound, PreconditionFailed
from konfig.input_guard import match_tags
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.pagination import Page, by_number, paginate
from konfig.revisions import repository
from konfig.revisions.schemas import (
    Change,
    DiffRead,
    EntryVersionRead,
    RevisionRead,
    SnapshotEntry,
    SnapshotRead,
)
from konfig.revisions.states import (
    State,
    diff_states,
    open_version,
    secret_keys,
    shown_as,
    state_of_version,
)
from konfig.revisions.writer import WritePolicy
from konfig.users import repository as users_repository
from konfig.users import service as users


def revision_etag(revision: int) -> str:
    return f'"{revision}"'


async def actor_emails(
    session: AsyncSession, principal: Principal, actors: list[str]
) -> dict[str, str]:
    """History's actors (``user:<id>``) as emails, for a member of the tenant; an API token
    is told none (a service reading history has no need of the people's addresses)."""
    if principal.kind != "user":
        return {}
    return await users.display_names(session, principal=principal, actors=actors)


def check_revision_match(if_match: str | None, namespace: Namespace) -> None:
    """412 unless ``If-Match`` (when sent) names the namespace's current revision."""
    if if_match is None:
        return
    tags = match_tags(if_match)
    if "*" not in tags and revision_etag(namespace.revision) not in tags:
        raise PreconditionFailed(
            f"namespace {namespace.name} is at revision {namespace.revision}, not the one in "
            "If-Match: read it again and reapply your change",
            {"current_revision": namespace.revision},
        )


def check_revision(namespace: Namespace, revision: int) -> None:
    """404 unless the namespace has reached ``revision``."""
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
    emails = await actor_emails(session, principal, [v.actor for v in versions])
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
                actor_email=emails.get(v.actor),
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
    key: str | None = None,
    author: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[RevisionRead]:
    """The namespace's revisions, newest first, each with what it changed key by key; only
    those touching ``key``, written by ``author`` (an email, or ``user:<id>`` /
    ``token:<id>``), from ``since`` and before ``until``, when given."""
    namespace = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    actors: list[str] | None = None
    if author:
        actors = [author] if ":" in author else []
        if "@" in author:
            found_user = await users_repository.get_by_email(session, email=author)
            if found_user is not None and found_user.tenant_id == namespace.tenant_id:
                actors = [f"user:{found_user.id}"]
    since, until = (t if t is None or t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until))
    filters = repository.RevisionFilters(key=key, actors=actors, since=since, until=until)
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
            filters=filters,
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
    emails = await actor_emails(session, principal, [r.actor for r in found])
    items = [
        RevisionRead(
            revision=r.revision,
            actor=r.actor,
            actor_email=emails.get(r.actor),
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
    check_revision(namespace, revision)
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
    check_revision(namespace, from_revision)
    check_revision(namespace, to_revision)
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


async def change_notes(
    session: AsyncSession, *, principal: Principal, namespace_id: uuid.UUID, numbers: list[int]
) -> dict[int, str]:
    """The notes left with these revisions of a namespace the caller may read."""
    found = await namespaces.get(session, principal=principal, namespace_id=namespace_id)
    return await repository.messages(
        session, tenant_id=found.tenant_id, namespace_id=found.id, numbers=numbers
    )
