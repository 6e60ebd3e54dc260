"""Protection policies: which namespaces change only through approved change requests, how
many approvals they need and from whom.

A policy names namespaces with the pattern language of grants and token scopes
(``konfig.tokens.scopes``). Several may match one namespace: all of them apply (the most
approvals, no self-approval unless every one allows it, ``hard`` unless every one is ``soft``,
and an approver must satisfy each). The writers read only ``namespaces.protection``, under the
namespace's lock: whenever a policy changes, or a namespace is made, it is set again here.
Admins manage policies; every change is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.changes import repository
from konfig.changes.models import ProtectionPolicy
from konfig.changes.schemas import Approver, PolicyCreate, PolicyRead, PolicyUpdate
from konfig.errors import NotFound, ValidationFailed
from konfig.groups import repository as groups
from konfig.tokens.scopes import compile_pattern
from konfig.users.models import Role, User


@dataclass(frozen=True, slots=True)
class Rules:
    """What the policies matching one namespace ask, combined."""

    approvals_required: int
    allow_self_approval: bool
    enforcement: str  # hard | soft
    approvers: tuple[tuple[Approver, ...], ...]  # one tuple per policy; empty: editors


def matches(policy: ProtectionPolicy, namespace: str) -> bool:
    return bool(compile_pattern(policy.namespaces).fullmatch(namespace))


def rules_for(found: Sequence[ProtectionPolicy], namespace: str) -> Rules | None:
    """The combined rules of the policies matching ``namespace``; None: it is unprotected."""
    matching = [p for p in found if matches(p, namespace)]
    if not matching:
        return None
    return Rules(
        approvals_required=max(p.approvals_required for p in matching),
        allow_self_approval=all(p.allow_self_approval for p in matching),
        enforcement="soft" if all(p.enforcement == "soft" for p in matching) else "hard",
        approvers=tuple(tuple(Approver.model_validate(a) for a in p.approvers) for p in matching),
    )


async def rules(session: AsyncSession, *, tenant_id: uuid.UUID, namespace: str) -> Rules | None:
    return rules_for(await repository.policies(session, tenant_id=tenant_id), namespace)


async def protection_for(session: AsyncSession, *, tenant_id: uuid.UUID, name: str) -> str | None:
    """What ``namespaces.protection`` holds for a namespace named so."""
    found = await rules(session, tenant_id=tenant_id, namespace=name)
    return None if found is None else found.enforcement


def may_approve(
    principal: Principal, person: User | None, rules: Rules, namespace: str, author: str
) -> bool:
    """Whether ``principal`` (``person``: their user row, for groups) may approve a request
    by ``author`` on ``namespace``."""
    if principal.kind != "user" or person is None or not person.is_active:
        return False
    if principal.actor == author and not rules.allow_self_approval:
        return False
    held = principal.role_on(namespace)
    for approvers in rules.approvers:
        if not approvers:
            if not principal.allows(namespace, "write"):
                return False
            continue
        if not any(_is(principal, person, held, a) for a in approvers):
            return False
    return True


def _is(principal: Principal, person: User, held: Role | None, approver: Approver) -> bool:
    if approver.role is not None:
        return held is not None and held.at_least(Role(approver.role))
    return principal.is_superuser or approver.group in person.groups


def read(policy: ProtectionPolicy) -> PolicyRead:
    return PolicyRead(
        id=policy.id,
        namespaces=policy.namespaces,
        approvals_required=policy.approvals_required,
        approvers=[Approver.model_validate(a) for a in policy.approvers],
        allow_self_approval=policy.allow_self_approval,
        enforcement=policy.enforcement,
        created_by=policy.created_by,
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


def _admin(principal: Principal) -> None:
    principal.require_user()
    principal.require(Role.admin)


async def list_policies(session: AsyncSession, *, principal: Principal) -> list[PolicyRead]:
    principal.require(Role.viewer)
    return [read(p) for p in await repository.policies(session, tenant_id=principal.tenant_id)]


async def get(session: AsyncSession, *, principal: Principal, policy_id: uuid.UUID) -> PolicyRead:
    principal.require(Role.viewer)
    return read(await _get(session, principal, policy_id))


async def _get(
    session: AsyncSession, principal: Principal, policy_id: uuid.UUID
) -> ProtectionPolicy:
    found = await repository.policy(session, tenant_id=principal.tenant_id, policy_id=policy_id)
    if found is None:
        raise NotFound(f"no protection policy {policy_id}")
    return found


async def _check_groups(
    session: AsyncSession, tenant_id: uuid.UUID, approvers: Sequence[Approver]
) -> None:
    wanted = {a.group for a in approvers if a.group is not None}
    if not wanted:
        return
    known = {g.name for g in await groups.in_tenant(session, tenant_id=tenant_id)}
    missing = sorted(wanted - known)
    if missing:
        raise ValidationFailed(
            f"no group named {missing[0]} in this tenant: approvers name existing groups",
            {"rule": "approvers", "groups": missing},
        )


def _stored(approvers: Sequence[Approver]) -> list[dict[str, str]]:
    return [a.model_dump(exclude_none=True) for a in approvers]


async def create(
    session: AsyncSession, *, principal: Principal, payload: PolicyCreate
) -> PolicyRead:
    _admin(principal)
    await _check_groups(session, principal.tenant_id, payload.approvers)
    policy = ProtectionPolicy(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        namespaces=payload.namespaces,
        approvals_required=payload.approvals_required,
        approvers=_stored(payload.approvers),
        allow_self_approval=payload.allow_self_approval,
        enforcement=payload.enforcement,
        created_by=principal.actor,
    )
    await repository.add(session, policy)
    await settle(session, tenant_id=principal.tenant_id)
    await _audit(session, "protection_policy.create", policy, after=read(policy))
    return read(policy)


async def update(
    session: AsyncSession, *, principal: Principal, policy_id: uuid.UUID, payload: PolicyUpdate
) -> PolicyRead:
    _admin(principal)
    policy = await _get(session, principal, policy_id)
    before = read(policy)
    given = payload.model_fields_set
    if payload.approvers is not None:
        await _check_groups(session, principal.tenant_id, payload.approvers)
        policy.approvers = _stored(payload.approvers)
    for name in ("namespaces", "approvals_required", "allow_self_approval", "enforcement"):
        value = getattr(payload, name)
        if name in given and value is not None:
            setattr(policy, name, value)
    await session.flush()
    await settle(session, tenant_id=principal.tenant_id)
    after = read(policy)
    await _audit(session, "protection_policy.update", policy, before=before, after=after)
    return after


async def delete(session: AsyncSession, *, principal: Principal, policy_id: uuid.UUID) -> None:
    _admin(principal)
    policy = await _get(session, principal, policy_id)
    before = read(policy)
    await repository.delete_policy(session, policy)
    await settle(session, tenant_id=principal.tenant_id)
    await _audit(session, "protection_policy.delete", policy, before=before)


async def _audit(
    session: AsyncSession,
    action: str,
    policy: ProtectionPolicy,
    *,
    before: PolicyRead | None = None,
    after: PolicyRead | None = None,
) -> None:
    summary = {}
    if before is not None:
        summary["before"] = before.model_dump(mode="json", exclude={"created_at", "updated_at"})
    if after is not None:
        summary["after"] = after.model_dump(mode="json", exclude={"created_at", "updated_at"})
    await audit.record(
        session,
        action=action,
        target_type="protection_policy",
        target=str(policy.id),
        summary=summary,
    )


async def settle(session: AsyncSession, *, tenant_id: uuid.UUID) -> None:
    """Set every namespace's ``protection`` from the tenant's policies as they stand now."""
    found = await repository.policies(session, tenant_id=tenant_id)
    moves: dict[str | None, list[uuid.UUID]] = {}
    for namespace_id, name, protection in await repository.namespace_protections(
        session, tenant_id=tenant_id
    ):
        combined = rules_for(found, name)
        wanted = None if combined is None else combined.enforcement
        if wanted != protection:
            moves.setdefault(wanted, []).append(namespace_id)
    for to, ids in moves.items():
        await repository.set_protection(session, tenant_id=tenant_id, namespace_ids=ids, to=to)
