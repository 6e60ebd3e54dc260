"""Restoring a backup: verify and decrypt everything first, then one revision per namespace.

All or nothing: the file's checksum, every value's key and integrity, every entry's validation,
every template, every include and the include graph are checked before the first row is
written, and all the writes share one transaction. History is never erased: a restore is a new
revision written through ``commit_changes``, like any other change.

Templates come back before entries, so the restored entries are checked against the contracts
they were backed up with. A backup taken before templates existed holds no ``template`` field:
its restore leaves the namespaces' templates as they are.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError as PydanticError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.backups import repository
from konfig.backups.format import BackupDocument, BackupNamespace, BackupRefused, key_material
from konfig.backups.schemas import (
    EntryView,
    FieldChange,
    KeyChange,
    NamespaceRestore,
    RestoreRequest,
    RestoreResult,
)
from konfig.backups.service import Backups, admin_tenant, find
from konfig.changes import policies as protection
from konfig.configs.models import ConfigEntry
from konfig.configs.schemas import MASK
from konfig.errors import KonfigError, NotFound, ValidationFailed
from konfig.namespaces import repository as namespaces
from konfig.namespaces.models import Namespace
from konfig.namespaces.service import find_cycle, settle_contracts
from konfig.namespaces.templates import Template
from konfig.revisions.writer import (
    EntryDraft,
    check_drafts,
    commit_changes,
    decrypt_value,
    lock_namespace,
    validation_error,
)
from konfig.security.crypto import DecryptionError, Keyring

UNREADABLE = "<unreadable: the stored value failed its integrity check>"
_FIELDS = ("value", "value_type", "validation_schema", "description", "is_secret")


@dataclass
class _Plan:
    source: BackupNamespace
    drafts: list[EntryDraft]
    namespace: Namespace | None
    report: NamespaceRestore
    deletes: list[str]
    # The template to declare, when the backup holds one that differs from the current.
    template: dict[str, Any] | None = None


def _refuse(backup_id: str, reason: str, message: str, **details: Any) -> BackupRefused:
    return BackupRefused(
        f"backup {backup_id} is refused: {message}; nothing was changed",
        {"backup_id": backup_id, "reason": reason, **details},
    )


def _select(document: BackupDocument, wanted: list[str] | None) -> list[BackupNamespace]:
    if wanted is None:
        return sorted(document.namespaces, key=lambda ns: ns.name)
    held = {ns.name: ns for ns in document.namespaces}
    missing = [name for name in dict.fromkeys(wanted) if name not in held]
    if missing:
        raise ValidationFailed(
            f"namespaces: the backup holds no namespace named {', '.join(missing)}",
            {"rule": "namespaces", "missing": missing},
        )
    return sorted((held[name] for name in dict.fromkeys(wanted)), key=lambda ns: ns.name)


def decrypt_drafts(
    keyring: Keyring, document: BackupDocument, selected: list[BackupNamespace], backup_id: str
) -> dict[str, list[EntryDraft]]:
    """Every selected entry as a draft with its plaintext value; refuses on any failure.

    Values are bound to the ids they were written under, so they are decrypted with the
    backup's tenant and namespace ids; the writer re-encrypts them for wherever they go.
    """
    key_ids: set[str] = set()
    for ns in selected:
        for entry in ns.entries:
            try:
                key_ids.add(Keyring.key_id(entry.ciphertext_bytes()))
            except DecryptionError as exc:
                raise _refuse(
                    backup_id,
                    "format",
                    f"the value of {entry.key} in {ns.name} is not a Konfig ciphertext",
                ) from exc
    unknown = sorted(k for k in key_ids if key_material(keyring, k) is None)
    if unknown:
        raise _refuse(
            backup_id,
            "unknown_key",
            f"its values are encrypted with key(s) {', '.join(unknown)}, which this instance's "
            "keyring does not hold",
            key_ids=unknown,
        )
    drafts: dict[str, list[EntryDraft]] = {}
    for ns in selected:
        found = drafts.setdefault(ns.name, [])
        for entry in ns.entries:
            try:
                value = decrypt_value(
                    keyring, document.tenant.id, ns.id, entry.key, entry.ciphertext_bytes()
                )
            except (DecryptionError, orjson.JSONDecodeError) as exc:
                raise _refuse(
                    backup_id,
                    "value_integrity",
                    f"the value of {entry.key} in {ns.name} failed its integrity check",
                    namespace=ns.name,
                    key=entry.key,
                ) from exc
            found.append(
                EntryDraft(
                    entry.key,
                    value,
                    entry.value_type,
                    entry.validation_schema,
                    entry.description,
                    entry.is_secret,
                )
            )
    return drafts


def _check_values(drafts: dict[str, list[EntryDraft]], backups: Backups) -> None:
    """Today's validation rules and limits, checked for every namespace before writing."""
    for name, found in drafts.items():
        try:
            check_drafts(found, backups.policy.limits)
        except KonfigError as exc:
            raise type(exc)(
                f"namespace {name}: {exc.message}", {**exc.details, "namespace": name}
            ) from exc


_KEEP = object()  # a backup taken before templates: the namespace's template stays as it is


def _templates(backups: Backups, selected: list[BackupNamespace]) -> dict[str, Any]:
    """Each selected namespace's template from the backup, checked as a declaration is
    (``_KEEP`` when the backup predates templates)."""
    found: dict[str, Any] = {}
    for ns in selected:
        if "template" not in ns.model_fields_set:
            found[ns.name] = _KEEP
            continue
        if ns.template is None:
            found[ns.name] = None
            continue
        try:
            template = Template.model_validate(ns.template)
        except PydanticError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValidationFailed(
                f"namespace {ns.name}: its template is not valid ({where}: {first['msg']})",
                {"rule": "template", "namespace": ns.name},
            ) from exc
        problems = template.problems(backups.policy.limits)
        if problems:
            error = validation_error(problems)
            raise type(error)(
                f"namespace {ns.name}: its template: {error.message}",
                {**error.details, "namespace": ns.name},
            )
        found[ns.name] = template.model_dump(mode="json")
    return found


async def _check_includes(
    session: AsyncSession, *, tenant_id: uuid.UUID, selected: list[BackupNamespace]
) -> None:
    """Every include must exist after the restore, and the includes must not form a cycle."""
    names = await namespaces.names_by_id(session, tenant_id=tenant_id)
    graph = {
        names[ns_id]: [names[i] for i in ids if i in names]
        for ns_id, ids in (await namespaces.include_graph(session, tenant_id=tenant_id)).items()
    }
    graph.update({ns.name: list(ns.includes) for ns in selected})
    for ns in selected:
        missing = [name for name in ns.includes if name not in graph]
        if missing:
            raise ValidationFailed(
                f"namespace {ns.name} includes {', '.join(missing)}, which neither exists nor "
                "is restored: add it to the selection",
                {"rule": "includes", "namespace": ns.name, "missing": missing},
            )
        cycle = find_cycle(graph, ns.name)
        if cycle is not None:
            shown = " → ".join(cycle)
            raise ValidationFailed(
                f"restoring would make the includes form a cycle: {shown}",
                {"rule": "includes", "cycle": shown},
            )


def _view(value: Any, draft: EntryDraft | ConfigEntry, *, reveal: bool) -> EntryView:
    return EntryView(
        value=MASK if draft.is_secret and not reveal else value,
        value_type=draft.value_type,
        validation_schema=draft.validation_schema,
        description=draft.description,
        is_secret=draft.is_secret,
    )


def _current_value(keyring: Keyring, entry: ConfigEntry) -> Any:
    try:
        return decrypt_value(
            keyring, entry.tenant_id, entry.namespace_id, entry.key, entry.value_ciphertext
        )
    except (DecryptionError, orjson.JSONDecodeError):
        return UNREADABLE  # restoring over a damaged value is exactly what backups are for


def _differences(current: ConfigEntry, now: Any, draft: EntryDraft) -> list[str]:
    differs = {
        "value": now is UNREADABLE or orjson.dumps(now) != orjson.dumps(draft.value),
        "value_type": current.value_type != draft.value_type,
        "validation_schema": (current.validation_schema or None)
        != (draft.validation_schema or None),
        "description": current.description != draft.description,
        "is_secret": current.is_secret != draft.is_secret,
    }
    return [name for name in _FIELDS if differs[name]]


def _plan(
    keyring: Keyring,
    source: BackupNamespace,
    drafts: list[EntryDraft],
    namespace: Namespace | None,
    entries: list[ConfigEntry],
    names_by_id: dict[str, str],
    template: Any,
    *,
    created: bool,
    reveal: bool,
) -> _Plan:
    current = {e.key: e for e in entries}
    wanted = {d.key for d in drafts}
    added, changed = [], []
    unchanged = 0
    for draft in drafts:
        entry = current.get(draft.key)
        after = _view(draft.value, draft, reveal=reveal)
        if entry is None:
            added.append(KeyChange(key=draft.key, fields=list(_FIELDS), before=None, after=after))
            continue
        now = _current_value(keyring, entry)
        fields = _differences(entry, now, draft)
        if not fields:
            unchanged += 1
            continue
        before = _view(now, entry, reveal=reveal and now is not UNREADABLE)
        changed.append(KeyChange(key=draft.key, fields=fields, before=before, after=after))
    removed = [
        KeyChange(
            key=e.key,
            fields=list(_FIELDS),
            before=_view(_current_value(keyring, e), e, reveal=reveal),
            after=None,
        )
        for e in entries
        if e.key not in wanted
    ]
    description = includes = None
    if namespace is not None and not created:
        if namespace.description != source.description:
            description = FieldChange(before=namespace.description, after=source.description)
        now_includes = [names_by_id.get(i, i) for i in namespace.includes]
        if now_includes != source.includes:
            includes = FieldChange(before=now_includes, after=source.includes)
    declared = (namespace.template or None) if namespace is not None else None
    template_change = None
    if template is not _KEEP and template != declared:
        template_change = FieldChange(before=declared, after=template)
    report = NamespaceRestore(
        name=source.name,
        namespace_id=namespace.id if namespace is not None else None,
        created=created or namespace is None,
        revision=None,
        description=description,
        includes=includes,
        template=template_change,
        added=added,
        removed=removed,
        changed=changed,
        unchanged=unchanged,
    )
    return _Plan(
        source,
        drafts,
        namespace,
        report,
        [c.key for c in removed],
        template if template_change is not None else None,
    )


async def _create_missing(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    actor: str,
    selected: list[BackupNamespace],
    existing: dict[str, Namespace],
) -> set[str]:
    created: set[str] = set()
    for ns in selected:
        if ns.name in existing:
            continue
        existing[ns.name] = await namespaces.create(
            session,
            namespace=Namespace(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                name=ns.name,
                description=ns.description,
                includes=[],
                revision=0,
                updated_by=actor,
                protection=await protection.protection_for(
                    session, tenant_id=tenant_id, name=ns.name
                ),
            ),
        )
        created.add(ns.name)
    return created


async def restore(
    session: AsyncSession,
    *,
    backups: Backups,
    tenant_id: uuid.UUID,
    tenant: str,
    actor: str,
    backup_id: str,
    request: RestoreRequest,
    same_tenant_only: bool = True,
) -> RestoreResult:
    """Restore (or with ``dry_run`` only diff) a backup of the tenant.

    ``same_tenant_only=False`` (operators, from the command line) also accepts a backup in the
    tenant's directory that was taken of an earlier tenant of that name, e.g. before the
    database was lost and the tenant registered again.
    """
    stored, _ = await asyncio.to_thread(
        find,
        backups,
        tenant=tenant,
        tenant_id=tenant_id if same_tenant_only else None,
        backup_id=backup_id,
    )
    try:
        verified = await asyncio.to_thread(backups.load, stored)
    except FileNotFoundError as exc:  # pruned a moment ago
        raise NotFound(f"no backup {backup_id}") from exc
    document = verified.document
    selected = _select(document, request.namespaces)
    drafts = await asyncio.to_thread(decrypt_drafts, backups.keyring, document, selected, backup_id)
    _check_values(drafts, backups)
    templates = _templates(backups, selected)
    await _check_includes(session, tenant_id=tenant_id, selected=selected)

    names = [ns.name for ns in selected]
    existing = await repository.namespaces_by_name(session, tenant_id=tenant_id, names=names)
    created: set[str] = set()
    if not request.dry_run:
        created = await _create_missing(
            session, tenant_id=tenant_id, actor=actor, selected=selected, existing=existing
        )
        # Lock every namespace (in name order, so two restores cannot deadlock) before reading
        # what it holds: the keys to delete are then exactly those present when writing.
        for name in names:
            existing[name] = await lock_namespace(
                session, tenant_id=tenant_id, namespace_id=existing[name].id
            )
    entries = await repository.entries_of(
        session, tenant_id=tenant_id, namespace_ids=[ns.id for ns in existing.values()]
    )
    names_by_id = await namespaces.names_by_id(session, tenant_id=tenant_id)
    plans = []
    for source in selected:
        namespace = existing.get(source.name)
        plans.append(
            _plan(
                backups.keyring,
                source,
                drafts[source.name],
                namespace,
                entries.get(namespace.id, []) if namespace is not None else [],
                names_by_id,
                templates[source.name],
                created=source.name in created,
                reveal=request.reveal,
            )
        )

    if not request.dry_run:
        await _declare_templates(
            session,
            tenant_id=tenant_id,
            actor=actor,
            plans=plans,
            created=[existing[name] for name in sorted(created)],
        )
        ids_by_name = {name: str(ns_id) for ns_id, name in names_by_id.items()}
        for plan in plans:
            await _apply(
                session,
                backups=backups,
                plan=plan,
                ids_by_name=ids_by_name,
                actor=actor,
                tenant_id=tenant_id,
                backup_id=backup_id,
            )
    return RestoreResult(
        backup_id=backup_id, dry_run=request.dry_run, namespaces=[p.report for p in plans]
    )


async def _declare_templates(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    actor: str,
    plans: list[_Plan],
    created: list[Namespace],
) -> None:
    """The backup's templates declared before any entry is written, and the contracts they
    give settled: into the namespaces below them, and into those the restore created."""
    changed = [plan for plan in plans if plan.report.template is not None]
    for plan in changed:
        if plan.namespace is None:  # created or locked above
            raise RuntimeError(f"namespace {plan.source.name} was not prepared")
        plan.namespace.template = plan.template
        plan.namespace.updated_by = actor
    if changed or created:
        await session.flush()
        await settle_contracts(
            session,
            tenant_id=tenant_id,
            under=[plan.source.name for plan in changed],
            namespaces=created,
        )


async def _apply(
    session: AsyncSession,
    *,
    backups: Backups,
    plan: _Plan,
    ids_by_name: dict[str, str],
    actor: str,
    tenant_id: uuid.UUID,
    backup_id: str,
) -> None:
    namespace = plan.namespace
    if namespace is None:  # created or locked above
        raise RuntimeError(f"namespace {plan.source.name} was not prepared")
    includes = [ids_by_name[name] for name in plan.source.includes]
    if namespace.description != plan.source.description or namespace.includes != includes:
        namespace.description = plan.source.description
        namespace.includes = includes
        namespace.updated_by = actor
        await session.flush()
    outcome = await commit_changes(
        session,
        policy=backups.policy,
        tenant_id=tenant_id,
        namespace_id=namespace.id,
        actor=actor,
        upserts=plan.drafts,
        deletes=plan.deletes,
        message=f"restored from backup {backup_id}",
        locked=namespace,
    )
    plan.report.namespace_id = namespace.id
    plan.report.revision = outcome.revision


async def restore_for(
    session: AsyncSession,
    *,
    backups: Backups,
    principal: Principal,
    backup_id: str,
    request: RestoreRequest,
) -> RestoreResult:
    tenant = await admin_tenant(session, principal)
    result = await restore(
        session,
        backups=backups,
        tenant_id=principal.tenant_id,
        tenant=tenant,
        actor=principal.actor,
        backup_id=backup_id,
        request=request,
    )
    if not request.dry_run or request.reveal:
        await audit.record(
            session,
            action="backup.restore" if not request.dry_run else "backup.reveal",
            target_type="backup",
            target=backup_id,
            summary={"namespaces": [n.name for n in result.namespaces], "dry_run": request.dry_run},
        )
    return result
