"""A tenant's SSO settings: owners set them; the client secret is stored encrypted with the
keyring (bound to the tenant) and never answered back."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.errors import NotFound, ValidationFailed
from konfig.security.crypto import Keyring
from konfig.sso import repository
from konfig.sso.models import SsoConfig
from konfig.sso.schemas import MappingRule, SsoSettings
from konfig.users.models import Role
from konfig.users.schemas import GrantSpec


def secret_aad(tenant_id: uuid.UUID) -> bytes:
    return b"konfig-sso-client-secret:" + tenant_id.bytes


def client_secret(keyring: Keyring, config: SsoConfig) -> str:
    return keyring.decrypt(config.client_secret_ciphertext, secret_aad(config.tenant_id)).decode()


async def get(session: AsyncSession, *, principal: Principal) -> SsoConfig:
    principal.require_user()
    principal.require(Role.owner)
    config = await repository.get_config(session, tenant_id=principal.tenant_id)
    if config is None:
        raise NotFound("single sign-on is not set up for this organisation: PUT /api/v1/sso")
    return config


def _described(config: SsoConfig) -> dict[str, object]:
    """What the audit log keeps of the settings: everything but the secret."""
    return {
        "issuer": config.issuer,
        "client_id": config.client_id,
        "allowed_domains": list(config.allowed_domains),
        "role_mapping": list(config.role_mapping),
        "default_grants": list(config.default_grants),
        "group_claim": config.group_claim,
        "strict": config.strict,
        "password_login": config.password_login,
    }


async def put(
    session: AsyncSession, *, principal: Principal, keyring: Keyring, payload: SsoSettings
) -> SsoConfig:
    """Set the tenant's provider and mapping (owners only: it decides who gets in)."""
    principal.require_user()
    principal.require(Role.owner)
    tenant_id = principal.tenant_id
    config = await repository.get_config(session, tenant_id=tenant_id)
    before = None if config is None else _described(config)
    if config is None:
        if payload.client_secret is None:
            raise ValidationFailed(
                "client_secret: required when single sign-on is first set up",
                {"field": "client_secret"},
            )
        config = SsoConfig(id=uuid.uuid4(), tenant_id=tenant_id)
        await repository.add(session, _filled(config, payload, keyring))
    else:
        _filled(config, payload, keyring)
    await session.flush()
    await audit.record(
        session,
        action="sso.configure",
        target_type="sso",
        target=config.issuer,
        summary={
            "before": before,
            "after": _described(config),
            "client_secret_changed": payload.client_secret is not None,
        },
    )
    return config


def _filled(config: SsoConfig, payload: SsoSettings, keyring: Keyring) -> SsoConfig:
    config.issuer = payload.issuer
    config.client_id = payload.client_id
    if payload.client_secret is not None:
        config.client_secret_ciphertext = keyring.encrypt(
            payload.client_secret.encode(), secret_aad(config.tenant_id)
        )
    config.display_name = payload.display_name
    config.allowed_domains = payload.allowed_domains
    config.role_mapping = [rule.model_dump(mode="json") for rule in payload.role_mapping]
    config.default_grants = [g.model_dump(mode="json") for g in payload.default_grants]
    config.group_claim = payload.group_claim
    config.strict = payload.strict
    config.password_login = payload.password_login
    return config


def rules(config: SsoConfig) -> list[MappingRule]:
    return [MappingRule.model_validate(rule) for rule in config.role_mapping]


def default_grants(config: SsoConfig) -> list[GrantSpec]:
    return [GrantSpec.model_validate(g) for g in config.default_grants]
