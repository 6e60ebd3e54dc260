"""User management rules: who may add, change and remove whom."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal, superuser_scope
from konfig.db.session import across_tenants, record_change
from konfig.errors import Conflict, Forbidden, NotFound, ValidationFailed
from konfig.events import UserChanged
from konfig.pagination import Page, by_time, paginate, time_of
from konfig.security.passwords import hash_password, verify_password
from konfig.users import repository
from konfig.users.grants import EVERYWHERE, Grant, parse_grants, stored, tenant_role
from konfig.users.models import Role, User
from konfig.users.schemas import GrantsUpdate, MeUpdate, UserCreate, UserRead, UserUpdate


def _scope(principal: Principal) -> uuid.UUID | None:
    return None if principal.is_superuser else principal.tenant_id


async def get_me(session: AsyncSession, *, principal: Principal) -> User:
    principal.require_user()
    user = await repository.get(session, user_id=principal.id, tenant_id=principal.tenant_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def get(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID) -> User:
    principal.require(Role.admin)
    async with superuser_scope(session, principal, "a user of any tenant"):
        user = await repository.get(session, user_id=user_id, tenant_id=_scope(principal))
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def list_page(
    session: AsyncSession, *, principal: Principal, cursor: str | None, limit: int
) -> Page[UserRead]:
    principal.require(Role.admin)

    async def fetch(after: tuple[datetime, uuid.UUID] | None, count: int) -> list[User]:
        async with superuser_scope(session, principal, "the users of every tenant"):
            return await repository.list_page(
                session, tenant_id=_scope(principal), after=after, limit=count
            )

    users, next_cursor = await paginate(cursor, limit, read=by_time, fetch=fetch, position=time_of)
    return Page[UserRead](
        items=[UserRead.model_validate(u) for u in users], next_cursor=next_cursor
    )


def _check_may_grant(principal: Principal, grants: list[Grant]) -> None:
    for grant in grants:
        if not principal.is_superuser and grant.role.rank > principal.role.rank:
            raise Forbidden(
                f"you cannot grant the {grant.role.value} role: it is above your own",
                {"role": grant.role.value, "namespaces": grant.namespaces},
            )


async def set_grants(session: AsyncSession, *, user: User, grants: list[Grant]) -> bool:
    """Give ``user`` exactly these grants (and the tenant role they make): the one place grants
    change, so their logins and tokens are re-checked at once. False when nothing changed."""
    new = stored(grants)
    if new == stored(parse_grants(user.grants)):
        return False
    role = tenant_role([*grants, *parse_grants(user.group_grants)])
    if user.role == Role.owner and role != Role.owner:
        await _guard_last_owner(session, user=user, reason="demote")
    user.grants, user.role = new, role
    record_change(session, UserChanged(user.tenant_id, user.id))
    await session.flush()
    return True


async def set_group_grants(session: AsyncSession, *, user: User, grants: list[Grant]) -> bool:
    """Give ``user`` what their groups grant (``konfig.groups.service`` asks, whenever their
    groups or those groups' grants change). False when nothing changed."""
    new = stored(grants)
    if new == stored(parse_grants(user.group_grants)):
        return False
    # Groups never grant owner: an owner stays one, and nobody becomes one here.
    user.group_grants = new
    user.role = tenant_role([*parse_grants(user.grants), *grants])
    record_change(session, UserChanged(user.tenant_id, user.id))
    await session.flush()
    return True


async def create(session: AsyncSession, *, principal: Principal, payload: UserCreate) -> User:
    principal.require(Role.admin)
    grants = payload.initial_grants()
    _check_may_grant(principal, grants)
    async with across_tenants(session, "users: an email is unique across tenants"):
        taken = await repository.get_by_email(session, email=payload.email) is not None
    if taken:
        raise Conflict(f"a user with email {payload.email} already exists")
    try:
        user = await repository.create(
            session,
            tenant_id=principal.tenant_id,
            email=payload.email.lower(),
            full_name=payload.full_name,
            password_hash=hash_password(payload.password),
            role=tenant_role(grants),
            grants=stored(grants),
        )
    except IntegrityError as exc:
        raise Conflict(f"a user with email {payload.email} already exists") from exc
    await audit.record(
        session,
        action="user.create",
        target_type="user",
        target=user.email,
        summary={"after": {"role": user.role.value, "grants": user.grants}},
    )
    return user


async def _guard_last_owner(session: AsyncSession, *, user: User, reason: str) -> None:
    if user.role != Role.owner or not user.is_active:
        return
    await repository.lock_owners(session, tenant_id=user.tenant_id)
    if await repository.count_active_owners(session, tenant_id=user.tenant_id) <= 1:
        raise Conflict(
            f"cannot {reason} the last owner of the tenant: make someone else owner first"
        )


def _check_may_manage(principal: Principal, user: User) -> None:
    if not principal.is_superuser and user.role.rank > principal.role.rank:
        raise Forbidden(f"you cannot change a user whose role ({user.role.value}) is above yours")


def _described(user: User) -> dict[str, object]:
    return {
        "role": user.role.value,
        "grants": list(user.grants),
        "is_active": user.is_active,
        "full_name": user.full_name,
    }


async def update(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, payload: UserUpdate
) -> User:
    async with superuser_scope(session, principal, "change a user of any tenant"):
        return await _update(session, principal=principal, user_id=user_id, payload=payload)


async def _update(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, payload: UserUpdate
) -> User:
    user = await get(session, principal=principal, user_id=user_id)
    _check_may_manage(principal, user)
    before = _described(user)
    if payload.role is not None and payload.role != user.role:
        # The tenant role is the grant on '**': replaced, the other grants kept.
        kept = [g for g in parse_grants(user.grants) if g.namespaces != EVERYWHERE]
        _check_may_grant(principal, [Grant(payload.role, EVERYWHERE)])
        await set_grants(session, user=user, grants=[Grant(payload.role, EVERYWHERE), *kept])
    if payload.is_active is False and user.is_active:
        await _guard_last_owner(session, user=user, reason="deactivate")
        user.is_active = False
        await repository.end_sessions(session, user_id=user.id, reason="deactivated")
        record_change(session, UserChanged(user.tenant_id, user.id))
    elif payload.is_active is True and not user.is_active:
        user.is_active = True
        record_change(session, UserChanged(user.tenant_id, user.id))
    if payload.full_name is not None:
        user.full_name = payload.full_name
    await session.flush()
    after = _described(user)
    await audit.record(
        session,
        action="user.update",
        target_type="user",
        target=user.email,
        summary={"before": before, "after": after},
    )
    return user


async def replace_grants(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, payload: GrantsUpdate
) -> User:
    """Replace a user's grants whole; audited with the grants before and after."""
    async with superuser_scope(session, principal, "change a user of any tenant"):
        user = await get(session, principal=principal, user_id=user_id)
        _check_may_manage(principal, user)
        grants = [g.grant() for g in payload.grants]
        _check_may_grant(principal, grants)
        before = list(user.grants)
        if await set_grants(session, user=user, grants=grants):
            await audit.record(
                session,
                action="user.grants",
                target_type="user",
                target=user.email,
                summary={"before": {"grants": before}, "after": {"grants": user.grants}},
            )
    return user


async def delete(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID) -> None:
    async with superuser_scope(session, principal, "remove a user of any tenant"):
        await _delete(session, principal=principal, user_id=user_id)


async def _delete(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID) -> None:
    user = await get(session, principal=principal, user_id=user_id)
    _check_may_manage(principal, user)
    await _guard_last_owner(session, user=user, reason="remove")
    record_change(session, UserChanged(user.tenant_id, user.id))
    await repository.delete(session, user=user)
    await audit.record(
        session,
        action="user.delete",
        target_type="user",
        target=user.email,
        summary={"before": {"role": user.role.value}},
    )


async def update_me(session: AsyncSession, *, principal: Principal, payload: MeUpdate) -> User:
    user = await get_me(session, principal=principal)
    if payload.email is not None and payload.email.lower() != user.email:
        async with across_tenants(session, "users: an email is unique across tenants"):
            existing = await repository.get_by_email(session, email=payload.email)
        if existing is not None:
            raise Conflict(f"a user with email {payload.email} already exists")
        user.email = payload.email.lower()
    if payload.full_name is not None:
        user.full_name = payload.full_name
    if payload.password is not None:
        ok, _ = verify_password(payload.current_password or "", user.password_hash)
        if not ok:
            raise ValidationFailed(
                "current_password: the current password is needed to set a new one, and it "
                "does not match",
                {"field": "current_password"},
            )
        user.password_hash = hash_password(payload.password)
    await session.flush()
    changed = sorted(payload.model_fields_set - {"current_password"})
    await audit.record(
        session,
        action="user.update_self",
        target_type="user",
        target=user.email,
        summary={"changed": changed},
    )
    return user


async def display_names(
    session: AsyncSession, *, principal: Principal, actors: list[str]
) -> dict[str, str]:
    """How to show history's actors (``user:<id>``) to a member of the tenant: their emails."""
    principal.require(Role.viewer)
    ids: list[uuid.UUID] = []
    for actor in set(actors):
        kind, _, raw = actor.partition(":")
        if kind == "user":
            try:
                ids.append(uuid.UUID(raw))
            except ValueError:
                continue
    emails = await repository.emails_by_id(session, tenant_id=principal.tenant_id, user_ids=ids)
    return {f"user:{user_id}": email for user_id, email in emails.items()}
