"""Signing in through a tenant's OpenID provider.

``begin`` records the sign-in (its ``state`` hashed, its ``nonce`` and PKCE verifier) and names
the provider's URL to send the browser to; ``finish`` takes the callback: the sign-in it names
is spent at once (a replayed callback finds it spent), the code is exchanged and the ID token
checked (``konfig.sso.oidc``), the email must be verified and its domain allowed, and the
claims are mapped to grants at every sign-in. The first sign-in creates the user. Each refusal
is a ``SignInRefused`` raised before anything but the spent sign-in is written; the caller
records it (``record_refusal``) and shows its message.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth import service as auth_service
from konfig.auth.schemas import TokenPair
from konfig.db.base import utcnow
from konfig.db.session import across_tenants, bind_tenant
from konfig.groups import repository as group_repository
from konfig.groups import service as groups
from konfig.security.crypto import Keyring
from konfig.security.passwords import hash_password
from konfig.sso import repository
from konfig.sso.models import SsoConfig, SsoFlow
from konfig.sso.oidc import Client, ProviderError, Providers
from konfig.sso.service import client_secret, default_grants, rules
from konfig.tenants import repository as tenants
from konfig.users import repository as users
from konfig.users import service as user_service
from konfig.users.grants import Grant, stored, tenant_role
from konfig.users.models import Role, User

FLOW_LIFETIME = timedelta(minutes=10)


class SignInRefused(Exception):
    """A sign-in that must not go through: ``message`` for the person, ``reason`` for the
    audit log."""

    def __init__(
        self, message: str, reason: str, tenant_id: uuid.UUID | None, email: str = ""
    ) -> None:
        super().__init__(message)
        self.message, self.reason, self.tenant_id, self.email = message, reason, tenant_id, email


@dataclass(frozen=True, slots=True)
class Ticket:
    """Where the browser goes to sign in, and the state its callback must bring back."""

    url: str
    state: str


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


async def _tenant_config(session: AsyncSession, tenant_name: str) -> tuple[uuid.UUID, SsoConfig]:
    async with across_tenants(session, "sso: a tenant by name, before anyone signs in"):
        tenant = await tenants.get_by_name(session, name=tenant_name)
    if tenant is None:
        raise SignInRefused(f"There is no organisation named {tenant_name!r}.", "unknown", None)
    await bind_tenant(session, tenant.id)
    config = await repository.get_config(session, tenant_id=tenant.id)
    if config is None:
        raise SignInRefused(
            f"{tenant.name} has not set up single sign-on: sign in with your password.",
            "not_configured",
            tenant.id,
        )
    return tenant.id, config


def _client(keyring: Keyring, config: SsoConfig, redirect_uri: str) -> Client:
    return Client(config.issuer, config.client_id, client_secret(keyring, config), redirect_uri)


async def provider_name(session: AsyncSession, *, tenant_name: str) -> str | None:
    """How the sign-in page names the tenant's provider; None when it has none."""
    try:
        _, config = await _tenant_config(session, tenant_name)
    except SignInRefused:
        return None
    return config.display_name or config.issuer


async def begin(
    session: AsyncSession,
    *,
    providers: Providers,
    keyring: Keyring,
    tenant_name: str,
    redirect_uri: str,
    next_page: str,
) -> Ticket:
    tenant_id, config = await _tenant_config(session, tenant_name)
    try:
        start = await providers.start(_client(keyring, config, redirect_uri))
    except ProviderError as exc:
        raise SignInRefused(exc.message, exc.reason, tenant_id) from exc
    await repository.forget_old_flows(session, tenant_id=tenant_id)
    await repository.add(
        session,
        SsoFlow(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            state_hash=state_hash(start.state),
            nonce=start.nonce,
            code_verifier=start.code_verifier,
            next_page=next_page,
            expires_at=utcnow() + FLOW_LIFETIME,
        ),
    )
    return Ticket(start.url, start.state)


async def _spend(session: AsyncSession, state: str, browser_state: str | None) -> SsoFlow:
    if not state:
        raise SignInRefused("The provider sent no sign-in state back.", "no_state", None)
    async with across_tenants(session, "sso: the sign-in a callback names"):
        flow = await repository.flow_by_state(session, state_hash=state_hash(state))
    if flow is None:
        raise SignInRefused(
            "This sign-in is unknown to Konfig (a forged or mistyped link).", "unknown_state", None
        )
    await bind_tenant(session, flow.tenant_id)
    if flow.spent_at is not None:
        raise SignInRefused(
            "This sign-in was used already: a callback is good for one sign-in only.",
            "replayed",
            flow.tenant_id,
        )
    flow.spent_at = utcnow()
    await session.flush()
    if browser_state is None or not secrets.compare_digest(browser_state, state):
        raise SignInRefused(
            "This sign-in was started in another browser: start again here.",
            "browser_mismatch",
            flow.tenant_id,
        )
    if flow.expires_at < utcnow():
        raise SignInRefused("This sign-in took too long: start again.", "expired", flow.tenant_id)
    return flow


def mapped_grants(config: SsoConfig, claims: dict[str, Any]) -> tuple[list[Grant], bool]:
    """The grants the claims earn (the defaults, then each matching rule's), and whether any
    rule matched."""
    grants = [g.grant() for g in default_grants(config)]
    matched = False
    for rule in rules(config):
        held = claims.get(rule.claim)
        values = held if isinstance(held, list) else [held]
        if rule.value in [str(v) for v in values if isinstance(v, str | int)]:
            matched = True
            grants.extend(g.grant() for g in rule.grants)
    return grants, matched


def _checked_email(config: SsoConfig, claims: dict[str, Any], tenant_id: uuid.UUID) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise SignInRefused("The provider sent no email address.", "no_email", tenant_id)
    email = email.strip().lower()
    if claims.get("email_verified") is not True:
        raise SignInRefused(
            f"The provider has not verified {email}: verify it there first.",
            "email_unverified",
            tenant_id,
            email,
        )
    if email.rpartition("@")[2] not in config.allowed_domains:
        raise SignInRefused(
            f"{email} is not in a domain this organisation allows.",
            "domain_not_allowed",
            tenant_id,
            email,
        )
    return email


async def finish(
    session: AsyncSession,
    *,
    providers: Providers,
    keyring: Keyring,
    policy: auth_service.TokenPolicy,
    state: str,
    code: str,
    error: str,
    browser_state: str | None,
    redirect_uri: str,
) -> tuple[TokenPair, str]:
    """The callback: the login's token pair and the page to go on to, or ``SignInRefused``."""
    flow = await _spend(session, state, browser_state)
    tenant_id = flow.tenant_id
    if error or not code:
        raise SignInRefused(
            f"The provider did not sign you in ({error or 'no code'}).", "provider_error", tenant_id
        )
    config = await repository.get_config(session, tenant_id=tenant_id)
    if config is None:
        raise SignInRefused("Single sign-on was switched off.", "not_configured", tenant_id)
    try:
        claims = await providers.finish(
            _client(keyring, config, redirect_uri),
            code=code,
            code_verifier=flow.code_verifier,
            nonce=flow.nonce,
        )
    except ProviderError as exc:
        raise SignInRefused(exc.message, exc.reason, tenant_id) from exc
    email = _checked_email(config, claims, tenant_id)
    grants, matched = mapped_grants(config, claims)
    synced = await _claimed_groups(session, config, claims, tenant_id)
    if config.strict and not matched and not synced:
        raise SignInRefused(
            "Your groups at the provider give you no role here: ask an admin.",
            "no_role",
            tenant_id,
            email,
        )
    user = await _member(session, email, tenant_id, grants, name=str(claims.get("name") or ""))
    if synced is not None:
        await groups.join(session, user=user, names=synced, actor=f"sso:{email}", via="sso")
    pair = await auth_service.open_login(session, policy=policy, user=user, via="sso")
    return pair, flow.next_page


async def _claimed_groups(
    session: AsyncSession, config: SsoConfig, claims: dict[str, Any], tenant_id: uuid.UUID
) -> list[str] | None:
    """The Konfig groups the ``group_claim`` names (None: groups are not synced)."""
    if not config.group_claim:
        return None
    held = claims.get(config.group_claim)
    values = {str(v) for v in (held if isinstance(held, list) else [held]) if isinstance(v, str)}
    existing = await group_repository.in_tenant(session, tenant_id=tenant_id)
    return sorted(g.name for g in existing if g.name in values)


async def _member(
    session: AsyncSession, email: str, tenant_id: uuid.UUID, grants: list[Grant], *, name: str
) -> User:
    """The user behind a checked sign-in, made on first sign-in, with the mapped grants
    (owners keep theirs: they are the organisation's local, break-glass accounts)."""
    async with across_tenants(session, "sso: an email is unique across tenants"):
        user = await users.get_by_email(session, email=email)
    if user is not None and user.tenant_id != tenant_id:
        raise SignInRefused(
            f"{email} belongs to another organisation.", "email_taken", tenant_id, email
        )
    if user is not None and not user.is_active:
        raise SignInRefused(f"{email} has been deactivated here.", "user_deactivated", tenant_id)
    actor = f"sso:{email}"
    if user is None:
        unusable = await asyncio.to_thread(hash_password, secrets.token_urlsafe(32))
        user = await users.create(
            session,
            tenant_id=tenant_id,
            email=email,
            full_name=name[:200],
            password_hash=unusable,
            role=tenant_role(grants),
            grants=stored(grants),
        )
        await audit.record(
            session,
            action="user.create",
            target_type="user",
            target=email,
            tenant_id=tenant_id,
            actor=actor,
            summary={"after": {"role": user.role.value, "grants": user.grants}, "via": "sso"},
        )
    elif user.role != Role.owner:
        before = list(user.grants)
        if await user_service.set_grants(session, user=user, grants=grants):
            await audit.record(
                session,
                action="user.grants",
                target_type="user",
                target=email,
                tenant_id=tenant_id,
                actor=actor,
                summary={
                    "before": {"grants": before},
                    "after": {"grants": user.grants},
                    "via": "sso",
                },
            )
    return user


async def record_refusal(session: AsyncSession, refused: SignInRefused) -> None:
    """The audit row of a refused sign-in (of no tenant when the callback named none)."""
    await session.flush()
    async with across_tenants(session, "audit: a refused sign-in"):
        await audit.record(
            session,
            action="sso.login_failed",
            target_type="user",
            target=refused.email,
            tenant_id=refused.tenant_id,
            actor="anonymous",
            summary={"reason": refused.reason},
        )
