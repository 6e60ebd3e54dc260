"""Namespace rules: names, includes without cycles, deletion guards; admins manage them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.changes import policies as protection
from konfig.configs.references import NamespaceDrop
from konfig.db.outbox import record_event
from konfig.db.session import record_change
from konfig.errors import Conflict, Forbidden, NotFound, ValidationFailed
from konfig.events import NamespaceChanged
from konfig.namespaces import repository, templates
from konfig.namespaces.models import Namespace
from konfig.namespaces.schemas import NamespaceCreate, NamespaceRead, NamespaceUpdate
from konfig.pagination import Page, by_text, paginate
from konfig.revisions.writer import WritePolicy
from konfig.tokens.scopes import Permission
from konfig.users.models import Role


async def get(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    permission: Permission = "read",
    reveal: bool = False,
) -> Namespace:
    """A namespace of the caller's tenant that the caller may ``permission`` (and, asked to
    ``reveal``, see the secrets of): 403 otherwise; another tenant's is simply not found."""
    principal.require(Role.viewer)
    namespace = await repository.get(
        session, tenant_id=principal.tenant_id, namespace_id=namespace_id
    )
    if namespace is None:
        raise NotFound(f"no namespace {namespace_id}")
    check_allowed(principal, namespace, permission)
    if reveal:
        check_allowed(principal, namespace, "secrets")
    return namespace


def check_allowed(principal: Principal, namespace: Namespace, permission: Permission) -> None:
    """403 unless the caller's token scopes (or role) allow ``permission`` on ``namespace``."""
    if principal.allows(namespace.name, permission):
        return
    if permission == "secrets":
        raise Forbidden(
            f"you may not see the secrets of namespace {namespace.name}: they read masked",
            {"namespace": namespace.name, "permission": "secrets"},
        )
    raise Forbidden(f"you may not {permission} namespace {namespace.name}")


async def render(
    session: AsyncSession, *, namespaces: list[Namespace], tenant_id: uuid.UUID
) -> list[NamespaceRead]:
    names = await repository.names_of(
        session, tenant_id=tenant_id, ids=[i for ns in namespaces for i in ns.includes]
    )
    counts = await repository.entry_counts(
        session, tenant_id=tenant_id, namespace_ids=[n.id for n in namespaces]
    )
    return [
        NamespaceRead(
            id=ns.id,
            name=ns.name,
            description=ns.description,
            includes=[names[i] for i in ns.includes if i in names],
            revision=ns.revision,
            entry_count=counts.get(ns.id, 0),
            created_at=ns.created_at,
            updated_at=ns.updated_at,
            updated_by=ns.updated_by,
        )
        for ns in namespaces
    ]


async def render_one(session: AsyncSession, *, namespace: Namespace) -> NamespaceRead:
    return (await render(session, namespaces=[namespace], tenant_id=namespace.tenant_id))[0]


async def _include_ids(
    session: AsyncSession, *, tenant_id: uuid.UUID, names: list[str], own_name: str
) -> list[str]:
    if len(set(names)) != len(names):
        raise ValidationFailed("includes: a namespace is listed twice", {"rule": "includes"})
    if own_name in names:
        raise ValidationFailed("includes: a namespace cannot include itself", {"rule": "includes"})
    found = await repository.by_names(session, tenant_id=tenant_id, names=names)
    missing = [n for n in names if n not in found]
    if missing:
        raise ValidationFailed(
            f"includes: no namespace named {', '.join(missing)} in this tenant",
            {"rule": "includes", "missing": missing},
        )
    return [str(found[n].id) for n in names]


def find_cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    """A path of includes from ``start`` back to itself in ``graph``, if there is one (a
    restore, which holds the tenant's whole graph)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, []):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


async def cycle_through(
    session: AsyncSession, *, tenant_id: uuid.UUID, start: str, includes: list[str]
) -> list[str] | None:
    """A path of includes from ``start`` (about to include ``includes``) back to itself, if
    there is one. Walks only what ``start`` would reach, a query per level of includes: the
    rest of the tenant is never read."""
    paths: dict[str, list[str]] = {}
    level: list[str] = []
    for nxt in includes:
        if nxt == start:
            return [start, start]
        if nxt not in paths:
            paths[nxt] = [start, nxt]
            level.append(nxt)
    while level:
        graph = await repository.includes_of(session, tenant_id=tenant_id, ids=level)
        following: list[str] = []
        for node in level:
            for nxt in graph.get(node, []):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        level = following
    return None


async def governing_contract(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str
) -> dict[str, Any] | None:
    """The contract of the nearest ancestor of ``name`` that declares a template."""
    parts = name.split("/")
    if len(parts) == 1:
        return None
    ancestors = ["/".join(parts[:end]) for end in range(1, len(parts))]
    found = await repository.by_names(session, tenant_id=tenant_id, names=ancestors)
    declared = {n: ns.template for n, ns in found.items() if ns.template}
    return templates.governing(name, declared)


async def settle_contracts(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    under: Sequence[str],
    namespaces: Sequence[Namespace] = (),
) -> None:
    """Copy into every namespace below those named ``under``, and into ``namespaces``, the
    template that now governs it (after templates changed, or namespaces were restored)."""
    declared = await repository.with_templates(session, tenant_id=tenant_id)
    settled = list(namespaces)
    for name in under:
        settled += await repository.descendants(session, tenant_id=tenant_id, name=name)
    for namespace in settled:
        namespace.contract = templates.governing(namespace.name, declared)
    await session.flush()


async def create(
    session: AsyncSession, *, principal: Principal, payload: NamespaceCreate
) -> Namespace:
    principal.require_on(payload.name, Role.admin)
    tenant_id = principal.tenant_id
    if await repository.get_by_name(session, tenant_id=tenant_id, name=payload.name) is not None:
        raise Conflict(f"a namespace named {payload.name} already exists")
    includes = await _include_ids(
        session, tenant_id=tenant_id, names=payload.includes, own_name=payload.name
    )
    namespace = Namespace(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        name=payload.name,
        description=payload.description,
        includes=includes,
        revision=0,
        updated_by=principal.actor,
        contract=await governing_contract(session, tenant_id=tenant_id, name=payload.name),
        protection=await protection.protection_for(session, tenant_id=tenant_id, name=payload.name),
    )
    # A new namespace may be the ancestor of resolved configs cached already, and bring includes.
    record_change(session, NamespaceChanged(tenant_id, namespace.id, namespace.name))
    try:
        await repository.create(session, namespace=namespace)
    except IntegrityError as exc:
        raise Conflict(f"a namespace named {payload.name} already exists") from exc
    await audit.record(
        session,
        action="namespace.create",
        target_type="namespace",
        target=namespace.name,
        namespace=namespace.name,
        summary={"after": {"description": payload.description, "includes": payload.includes}},
    )
    await record_event(
        session,
        tenant_id=tenant_id,
        type="namespace.created",
        namespace_id=namespace.id,
        namespace=namespace.name,
        data={"namespace": namespace.name, "actor": principal.actor},
    )
    return namespace


async def update(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    payload: NamespaceUpdate,
) -> Namespace:
    namespace = await get(session, principal=principal, namespace_id=namespace_id)
    principal.require_on(namespace.name, Role.admin)
    before = {"description": namespace.description, "includes": list(namespace.includes)}
    if payload.description is not None:
        namespace.description = payload.description
    if payload.includes is not None:
        ids = await _include_ids(
            session, tenant_id=namespace.tenant_id, names=payload.includes, own_name=namespace.name
        )
        cycle = await cycle_through(
            session, tenant_id=namespace.tenant_id, start=str(namespace.id), includes=ids
        )
        if cycle is not None:
            names = await repository.names_of(session, tenant_id=namespace.tenant_id, ids=cycle)
            shown = " → ".join(names.get(i, i) for i in cycle)
            raise ValidationFailed(
                f"includes would form a cycle: {shown}", {"rule": "includes", "cycle": shown}
            )
        if ids != list(namespace.includes):
            record_change(
                session, NamespaceChanged(namespace.tenant_id, namespace.id, namespace.name)
            )
        namespace.includes = ids
    namespace.updated_by = principal.actor
    await session.flush()
    names = await repository.names_of(
        session, tenant_id=namespace.tenant_id, ids=[*before["includes"], *namespace.includes]
    )
    await audit.record(
        session,
        action="namespace.update",
        target_type="namespace",
        target=namespace.name,
        namespace=namespace.name,
        summary={
            "before": before | {"includes": [names.get(i, i) for i in before["includes"]]},
            "after": {
                "description": namespace.description,
                "includes": [names.get(i, i) for i in namespace.includes],
            },
        },
    )
    return namespace


async def delete(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID,
    force: bool,
    policy: WritePolicy,
) -> None:
    """Delete a namespace: 409 while others include it, while it holds entries (unless
    ``force``), or while other namespaces' references need it or what it passes down."""
    namespace = await get(session, principal=principal, namespace_id=namespace_id)
    principal.require_on(namespace.name, Role.admin)
    includers = await repository.includers_of(
        session, tenant_id=namespace.tenant_id, namespace_id=namespace.id
    )
    if includers:
        listed = ", ".join(includers)
        raise Conflict(
            f"namespace {namespace.name} is included by {listed}: "
            "remove it from their includes first"
        )
    count = (
        await repository.entry_counts(
            session, tenant_id=namespace.tenant_id, namespace_ids=[namespace.id]
        )
    ).get(namespace.id, 0)
    if count and not force:
        raise Conflict(
            f"namespace {namespace.name} still holds {count} entries: "
            "delete them first or pass ?force=true",
            {"entry_count": count},
        )
    record_change(session, NamespaceChanged(namespace.tenant_id, namespace.id, namespace.name))
    await repository.delete(session, namespace=namespace)
    # Checked with the namespace gone in this session (a refusal rolls it back): its children
    # resolve as they will without it.
    await policy.check_references(session, NamespaceDrop(namespace.tenant_id, namespace.name))
    await audit.record(
        session,
        action="namespace.delete",
        target_type="namespace",
        target=namespace.name,
        namespace=namespace.name,
        summary={"entry_count": count, "force": force},
    )
    await record_event(
        session,
        tenant_id=namespace.tenant_id,
        type="namespace.deleted",
        namespace_id=namespace.id,
        namespace=namespace.name,
        data={"namespace": namespace.name, "actor": principal.actor, "entry_count": count},
    )


async def list_page(
    session: AsyncSession,
    *,
    principal: Principal,
    prefix: str | None,
    cursor: str | None,
    limit: int,
) -> Page[NamespaceRead]:
    principal.require(Role.viewer)
    found, next_cursor = await paginate(
        cursor,
        limit,
        read=by_text,
        fetch=lambda after, count: repository.list_page(
            session, tenant_id=principal.tenant_id, prefix=prefix, after=after, limit=count
        ),
        position=lambda namespace: [namespace.name],
    )
    # What their grants (tokens: scopes) let them read (a page may come out shorter).
    found = [ns for ns in found if principal.allows(ns.name, "read")]
    items = await render(session, namespaces=found, tenant_id=principal.tenant_id)
    return Page[NamespaceRead](items=items, next_cursor=next_cursor)
