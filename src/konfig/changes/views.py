"""Change requests as the API shows them: summaries for lists and for the 202 of a write, the
whole request (its diff, its conversation) for one."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.auth.principal import Principal
from konfig.changes import policies, repository
from konfig.changes.models import ChangeRequest, ChangeRequestEvent
from konfig.changes.policies import Rules
from konfig.changes.schemas import (
    PENDING,
    ChangeRequestRead,
    ChangeRequestSummary,
    EntryState,
    EventRead,
    KeyChange,
)
from konfig.configs.models import ConfigEntry
from konfig.configs.schemas import MASK
from konfig.namespaces.models import Namespace
from konfig.revisions import repository as revisions
from konfig.revisions.values import decrypt_value
from konfig.revisions.writer import current_entries
from konfig.security.crypto import Keyring
from konfig.users import service as users


def approvers(events: Sequence[ChangeRequestEvent]) -> list[str]:
    """Who approved, in order, each once."""
    return list(dict.fromkeys(e.actor for e in events if e.kind == "approve"))


def keys_of(request: ChangeRequest) -> list[str]:
    return [str(item["key"]) for item in request.changes]


async def summaries(
    session: AsyncSession, *, principal: Principal, requests: Sequence[ChangeRequest]
) -> list[ChangeRequestSummary]:
    tenant_id = principal.tenant_id
    spaces = await repository.namespaces_by_id(
        session, tenant_id=tenant_id, ids=[r.namespace_id for r in requests]
    )
    found = await repository.policies(session, tenant_id=tenant_id)
    events = await repository.events(
        session, tenant_id=tenant_id, request_ids=[r.id for r in requests]
    )
    names = await users.display_names(
        session, principal=principal, actors=[r.author for r in requests]
    )
    return [
        summary(
            request,
            spaces[request.namespace_id],
            policies.rules_for(found, spaces[request.namespace_id].name),
            [e for e in events if e.change_request_id == request.id],
            names,
        )
        for request in requests
    ]


def summary(
    request: ChangeRequest,
    namespace: Namespace,
    rules: Rules | None,
    events: Sequence[ChangeRequestEvent],
    names: dict[str, str],
) -> ChangeRequestSummary:
    return ChangeRequestSummary(
        id=request.id,
        namespace_id=namespace.id,
        namespace=namespace.name,
        status=request.status,
        title=request.title or f"Change to {namespace.name}",
        author=request.author,
        author_name=names.get(request.author),
        keys=keys_of(request),
        approvals=len(approvers(events)),
        approvals_required=rules.approvals_required if rules else 0,
        base_revision=request.base_revision,
        merged_revision=request.merged_revision,
        created_at=request.created_at,
        updated_at=request.updated_at,
    )


def proposed_value(keyring: Keyring, namespace: Namespace, item: dict[str, Any]) -> Any:
    """The value a ``set`` item proposes, decrypted."""
    ciphertext = base64.b64decode(item["value"])
    return decrypt_value(keyring, namespace.tenant_id, namespace.id, item["key"], ciphertext)


async def changes(
    session: AsyncSession,
    *,
    keyring: Keyring,
    namespace: Namespace,
    request: ChangeRequest,
    reveal: bool,
) -> list[KeyChange]:
    """Each key's change: as it was at its base version, as proposed, and whether the key has
    moved on since (a conflict at merge)."""
    current = await current_entries(session, namespace, keys_of(request))
    shown: list[KeyChange] = []
    for item in request.changes:
        key = str(item["key"])
        base = item.get("base_version")
        now = current.get(key)
        before = None
        if base is not None:
            version = await revisions.key_version(
                session,
                tenant_id=namespace.tenant_id,
                namespace_id=namespace.id,
                key=key,
                version=int(base),
            )
            if version is not None and version.value_ciphertext is not None:
                secret = version.is_secret
                value = (
                    decrypt_value(
                        keyring, namespace.tenant_id, namespace.id, key, version.value_ciphertext
                    )
                    if reveal or not secret
                    else MASK
                )
                before = EntryState(
                    value=value,
                    value_type=version.value_type,
                    validation_schema=version.validation_schema,
                    description=version.description,
                    is_secret=secret,
                )
        after = None
        if item["action"] == "set":
            secret = bool(item["is_secret"]) or bool(before and before.is_secret)
            after = EntryState(
                value=proposed_value(keyring, namespace, item) if reveal or not secret else MASK,
                value_type=item["value_type"],
                validation_schema=item.get("validation_schema"),
                description=item.get("description") or "",
                is_secret=bool(item["is_secret"]),
            )
        action = "delete" if after is None else ("create" if base is None else "update")
        shown.append(
            KeyChange(
                key=key,
                action=action,
                base_version=base,
                current_version=now.version if now else None,
                conflict=request.status in PENDING and moved(item, now),
                before=before,
                after=after,
            )
        )
    return shown


def moved(item: dict[str, Any], now: ConfigEntry | None) -> bool:
    """Whether the key changed in the namespace since the change was proposed."""
    return (None if now is None else now.version) != item.get("base_version")


async def read(
    session: AsyncSession,
    *,
    principal: Principal,
    keyring: Keyring,
    request: ChangeRequest,
    namespace: Namespace,
    rules: Rules | None,
    events: Sequence[ChangeRequestEvent],
    may_approve: bool,
    may_merge: bool,
    reveal: bool,
) -> ChangeRequestRead:
    names = await users.display_names(
        session, principal=principal, actors=[request.author, *(e.actor for e in events)]
    )
    head = summary(request, namespace, rules, events, names)
    shown = await changes(
        session, keyring=keyring, namespace=namespace, request=request, reveal=reveal
    )
    return ChangeRequestRead(
        **head.model_dump(),
        changes=shown,
        events=[
            EventRead(
                actor=e.actor,
                actor_name=names.get(e.actor),
                kind=e.kind,
                body=e.body,
                created_at=e.created_at,
            )
            for e in events
        ],
        approved_by=[names.get(a, a) for a in approvers(events)],
        conflicts=[c.key for c in shown if c.conflict],
        may_approve=may_approve,
        may_merge=may_merge,
        enforcement=rules.enforcement if rules else None,
    )
