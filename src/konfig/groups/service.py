"""Group rules: admins make groups and give them grants; members hold those grants besides
their own. Whenever a group's grants or a person's groups change, the members' ``group_grants``
(and tenant role) are settled again through ``konfig.users.service.set_group_grants``, so their
logins and tokens follow at once. Every change is audited."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.errors import Conflict, NotFound, ValidationFailed
from konfig.groups import repository
from konfig.groups.models import Group
from konfig.groups.schemas import GroupCreate, GroupGrants, GroupRead, Memberships
from konfig.users import repository as users
from konfig.users import service as user_service
from konfig.users.grants import parse_grants, stored
from konfig.users.models import Role, User


def read(group: Group, members: list[User]) -> GroupRead:
    return GroupRead(
        id=group.id,
        name=group.name,
        description=group.description,
        grants=group.grants,
        members=[u.email for u in members if group.name in u.groups],
        created_at=group.created_at,
        updated_at=group.updated_at,
    )


async def settle(session: AsyncSession, *, tenant_id: uuid.UUID, people: list[User]) -> None:
    """Give each of ``people`` the grants of the groups they belong to now."""
    groups = {g.name: g for g in await repository.in_tenant(session, tenant_id=tenant_id)}
    for user in people:
        grants = [
            grant
            for name in user.groups
            if name in groups
            for grant in parse_grants(groups[name].grants)
        ]
        await user_service.set_group_grants(session, user=user, grants=grants)


async def list_groups(session: AsyncSession, *, principal: Principal) -> list[GroupRead]:
    principal.require(Role.admin)
    people = await users.in_tenant(session, tenant_id=principal.tenant_id)
    return [
        read(g, people) for g in await repository.in_tenant(session, tenant_id=principal.tenant_id)
    ]


async def _get(session: AsyncSession, principal: Principal, group_id: uuid.UUID) -> Group:
    principal.require(Role.admin)
    group = await repository.get(session, tenant_id=principal.tenant_id, group_id=group_id)
    if group is None:
        raise NotFound(f"no group {group_id}")
    return group


async def create(session: AsyncSession, *, principal: Principal, payload: GroupCreate) -> GroupRead:
    principal.require(Role.admin)
    # Admins manage groups, and groups never grant owner: nobody grants above their own role.
    grants = [g.grant() for g in payload.grants]
    group = Group(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        name=payload.name,
        description=payload.description,
        grants=stored(grants),
    )
    try:
        async with session.begin_nested():
            await repository.add(session, group)
    except IntegrityError as exc:
        raise Conflict(f"a group named {payload.name} already exists") from exc
    await audit.record(
        session,
        action="group.create",
        target_type="group",
        target=group.name,
        summary={"after": {"grants": group.grants}},
    )
    # People may name it already (the provider's claim, before the group existed).
    people = await users.in_tenant(session, tenant_id=principal.tenant_id)
    members = [u for u in people if group.name in u.groups]
    await settle(session, tenant_id=principal.tenant_id, people=members)
    return read(group, people)


async def replace_grants(
    session: AsyncSession, *, principal: Principal, group_id: uuid.UUID, payload: GroupGrants
) -> GroupRead:
    group = await _get(session, principal, group_id)
    grants = [g.grant() for g in payload.grants]
    before = list(group.grants)
    group.grants = stored(grants)
    await session.flush()
    people = await users.in_tenant(session, tenant_id=principal.tenant_id)
    await settle(
        session, tenant_id=principal.tenant_id, people=[u for u in people if group.name in u.groups]
    )
    await audit.record(
        session,
        action="group.grants",
        target_type="group",
        target=group.name,
        summary={"before": {"grants": before}, "after": {"grants": group.grants}},
    )
    return read(group, people)


async def delete(session: AsyncSession, *, principal: Principal, group_id: uuid.UUID) -> None:
    group = await _get(session, principal, group_id)
    name = group.name
    await repository.delete(session, group)
    members = [
        u for u in await users.in_tenant(session, tenant_id=principal.tenant_id) if name in u.groups
    ]
    for user in members:
        user.groups = [g for g in user.groups if g != name]
    await settle(session, tenant_id=principal.tenant_id, people=members)
    await audit.record(
        session,
        action="group.delete",
        target_type="group",
        target=name,
        summary={"members": [u.email for u in members]},
    )


async def set_memberships(
    session: AsyncSession,
    *,
    principal: Principal,
    user_id: uuid.UUID,
    payload: Memberships,
) -> User:
    """Replace the groups a user belongs to (admins)."""
    principal.require(Role.admin)
    user = await users.get(session, user_id=user_id, tenant_id=principal.tenant_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    known = {g.name for g in await repository.in_tenant(session, tenant_id=principal.tenant_id)}
    unknown = [name for name in payload.groups if name not in known]
    if unknown:
        raise ValidationFailed(
            f"groups: no group named {', '.join(unknown)} in this tenant",
            {"field": "groups", "missing": unknown},
        )
    await join(session, user=user, names=payload.groups, actor=None)
    return user


async def join(
    session: AsyncSession, *, user: User, names: list[str], actor: str | None, via: str = ""
) -> bool:
    """Make ``names`` the groups of ``user`` (the provider's claim at a sign-in, or an admin),
    settle their grants and audit the change. False when nothing changed."""
    new = sorted(set(names))
    before = list(user.groups)
    if new == sorted(before):
        return False
    user.groups = new
    await settle(session, tenant_id=user.tenant_id, people=[user])
    summary: dict[str, object] = {"before": {"groups": before}, "after": {"groups": new}}
    if via:
        summary["via"] = via
    await audit.record(
        session,
        action="user.groups",
        target_type="user",
        target=user.email,
        tenant_id=user.tenant_id,
        actor=actor,
        summary=summary,
    )
    return True
