"""Registration, login, refresh-token rotation and logout."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.models import AuthSession
from konfig.auth.principal import Principal
from konfig.auth.schemas import LoginRequest, RegisterRequest, TokenPair
from konfig.db.base import utcnow
from konfig.db.session import across_tenants, bind_tenant, record_change
from konfig.errors import Conflict, Record, Unauthenticated
from konfig.events import LoginEnded
from konfig.security.jwt import InvalidToken, TokenSigner
from konfig.security.passwords import burn_verification, hash_password, verify_password
from konfig.sso import repository as sso
from konfig.tenants import repository as tenants
from konfig.tenants.models import Tenant
from konfig.users import repository as users
from konfig.users.models import Role, User

log = logging.getLogger("konfig.auth")

_BAD_LOGIN = "Incorrect email or password"


class PasswordLoginOff(Unauthenticated):
    """The password was right, but the tenant signs its people in through its provider."""


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    signer: TokenSigner
    access_lifetime: timedelta
    refresh_lifetime: timedelta


async def register(session: AsyncSession, *, payload: RegisterRequest) -> tuple[Tenant, User]:
    # Names and emails are unique across tenants, and the new tenant is bound once it exists.
    async with across_tenants(session, "register: a new tenant"):
        if await tenants.get_by_name(session, name=payload.name) is not None:
            raise Conflict(f"a tenant named {payload.name!r} already exists")
        if await users.get_by_email(session, email=payload.email) is not None:
            raise Conflict(f"a user with email {payload.email} already exists")
        try:
            tenant = await tenants.create(session, name=payload.name)
        except IntegrityError as exc:
            raise Conflict("that tenant name or email was taken a moment ago") from exc
    await bind_tenant(session, tenant.id)
    try:
        user = await users.create(
            session,
            tenant_id=tenant.id,
            email=payload.email.lower(),
            full_name=payload.full_name,
            password_hash=await asyncio.to_thread(hash_password, payload.password),
            role=Role.owner,
        )
    except IntegrityError as exc:
        raise Conflict("that tenant name or email was taken a moment ago") from exc
    await audit.record(
        session,
        action="tenant.register",
        target_type="tenant",
        target=tenant.name,
        tenant_id=tenant.id,
        actor=f"user:{user.id}",
        summary={"owner": user.email},
    )
    return tenant, user


def _issue(policy: TokenPolicy, user: User, auth_session: AuthSession) -> TokenPair:
    access, _ = policy.signer.issue(
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role.value,
        type="access",
        session_id=auth_session.id,
        lifetime=policy.access_lifetime,
    )
    refresh, claims = policy.signer.issue(
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role.value,
        type="refresh",
        session_id=auth_session.id,
        lifetime=policy.refresh_lifetime,
    )
    auth_session.current_refresh_jti = claims.jti
    auth_session.refreshed_at = utcnow()
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=int(policy.access_lifetime.total_seconds()),
    )


async def login(session: AsyncSession, *, policy: TokenPolicy, payload: LoginRequest) -> TokenPair:
    """Check the password and open a new login; unknown email and wrong password look alike."""
    # Hashing takes a CPU for a good fraction of a second: in a thread, the event loop keeps
    # serving everything else meanwhile (argon2 releases the GIL).
    async with across_tenants(session, "login: a user by email, before the tenant is known"):
        user = await users.get_by_email(session, email=payload.email)
    if user is None:
        await asyncio.to_thread(burn_verification, payload.password)
        raise Unauthenticated(_BAD_LOGIN, record=_failed_login(payload.email, None))
    await bind_tenant(session, user.tenant_id)
    ok, new_hash = await asyncio.to_thread(verify_password, payload.password, user.password_hash)
    if not ok or not user.is_active:
        reason = "wrong password" if not ok else "user deactivated"
        raise Unauthenticated(_BAD_LOGIN, record=_failed_login(payload.email, user, reason))
    if new_hash is not None:
        user.password_hash = new_hash
    if user.role != Role.owner and not await _password_login_open(session, user.tenant_id):
        raise PasswordLoginOff(
            "This organisation signs in through its single sign-on provider: use "
            f"/ui/sso/login?tenant={await _tenant_name(session, user.tenant_id)}",
            record=_failed_login(payload.email, user, "password login is off"),
        )
    return await open_login(session, policy=policy, user=user)


async def _password_login_open(session: AsyncSession, tenant_id: uuid.UUID) -> bool:
    config = await sso.get_config(session, tenant_id=tenant_id)
    return config is None or config.password_login


async def _tenant_name(session: AsyncSession, tenant_id: uuid.UUID) -> str:
    tenant = await session.get(Tenant, tenant_id)
    return tenant.name if tenant is not None else ""


async def open_login(
    session: AsyncSession, *, policy: TokenPolicy, user: User, via: str = "password"
) -> TokenPair:
    """A new login for ``user``, whose credentials were checked (a password, or the tenant's
    single sign-on provider): its token pair, and its audit row."""
    user.last_login_at = utcnow()
    auth_session = AuthSession(
        id=uuid.uuid4(),
        tenant_id=user.tenant_id,
        user_id=user.id,
        current_refresh_jti="",
        expires_at=utcnow() + policy.refresh_lifetime,
    )
    session.add(auth_session)
    pair = _issue(policy, user, auth_session)
    await session.flush()
    await audit.record(
        session,
        action="auth.login",
        target_type="user",
        target=user.email,
        tenant_id=user.tenant_id,
        actor=f"user:{user.id}",
        summary={"via": via} if via != "password" else None,
    )
    return pair


def _failed_login(email: str, user: User | None, reason: str = "unknown email") -> Record:
    # Read now: after the rollback the user object is expired and cannot be read.
    tenant_id = user.tenant_id if user else None

    async def record(session: AsyncSession) -> None:
        await bind_tenant(session, tenant_id)
        # An unknown email belongs to no tenant: its trace is the platform's (tenant_id NULL).
        unknown = across_tenants(session, "audit: a failed login of no tenant")
        async with unknown if tenant_id is None else nullcontext():
            await audit.record(
                session,
                action="auth.login_failed",
                target_type="user",
                target=email.lower(),
                tenant_id=tenant_id,
                actor="anonymous",
                summary={"reason": reason},
            )

    return record


def _revoke_family(session_id: uuid.UUID, reason: str) -> Record:
    async def record(session: AsyncSession) -> None:
        auth_session = await session.get(AuthSession, session_id)
        if auth_session is not None and auth_session.revoked_at is None:
            auth_session.revoked_at = utcnow()
            auth_session.revoked_reason = reason
            record_change(session, LoginEnded(auth_session.tenant_id, auth_session.id))
        log.warning("refresh token reused; login %s revoked", session_id)
        if auth_session is not None:
            await audit.record(
                session,
                action="auth.refresh_reused",
                target_type="login",
                target=str(session_id),
                tenant_id=auth_session.tenant_id,
                actor=f"user:{auth_session.user_id}",
                summary={"outcome": "login revoked"},
            )

    return record


async def refresh(session: AsyncSession, *, policy: TokenPolicy, refresh_token: str) -> TokenPair:
    """Spend a refresh token for a new pair; a spent one presented again ends the whole login."""
    try:
        claims = policy.signer.verify(refresh_token, expected_type="refresh")
    except InvalidToken as exc:
        raise Unauthenticated("Invalid or expired refresh token") from exc
    await bind_tenant(session, claims.tenant_id)
    query = select(AuthSession).where(AuthSession.id == claims.session_id).with_for_update()
    auth_session = (await session.execute(query)).scalar_one_or_none()
    if auth_session is None or auth_session.revoked_at is not None:
        raise Unauthenticated("This login has ended: sign in again")
    if auth_session.current_refresh_jti != claims.jti:
        raise Unauthenticated(
            "This refresh token was already used: the login has been ended for safety",
            record=_revoke_family(auth_session.id, "refresh token reused"),
        )
    user = await users.get(session, user_id=claims.user_id, tenant_id=claims.tenant_id)
    if user is None or not user.is_active:
        raise Unauthenticated("This login has ended: sign in again")
    pair = _issue(policy, user, auth_session)
    await session.flush()
    return pair


async def user_of(session: AsyncSession, *, principal: Principal) -> User | None:
    """The signed-in person's own account."""
    principal.require_user()
    return await users.get(session, user_id=principal.id, tenant_id=principal.tenant_id)


async def logout(session: AsyncSession, *, principal: Principal) -> None:
    principal.require_user()
    if principal.session_id is None:
        return
    auth_session = await session.get(AuthSession, principal.session_id)
    if auth_session is not None and auth_session.revoked_at is None:
        auth_session.revoked_at = utcnow()
        auth_session.revoked_reason = "logout"
        await session.flush()
        record_change(session, LoginEnded(auth_session.tenant_id, auth_session.id))
    await audit.record(
        session, action="auth.logout", target_type="login", target=str(principal.session_id)
    )
