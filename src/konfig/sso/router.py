from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.sso import service
from konfig.sso.models import SsoConfig
from konfig.sso.schemas import SsoRead, SsoSettings
from konfig.state import state_of
from konfig.tenants.models import Tenant

router = APIRouter(prefix="/sso", tags=["sso"], route_class=GuardedRoute)

CALLBACK = "/ui/sso/callback"


def callback_url(request: Request) -> str:
    """The redirect URI of every tenant's client: ``KONFIG_PUBLIC_URL`` or this request's."""
    base = state_of(request).settings.public_url or str(request.base_url)
    return base.rstrip("/") + CALLBACK


async def sso_read(session: AsyncSession, request: Request, config: SsoConfig) -> SsoRead:
    """The settings as answered (the secret left out; the sign-in and callback URLs added)."""
    tenant = await session.get(Tenant, config.tenant_id)
    name = tenant.name if tenant is not None else ""
    return SsoRead(
        issuer=config.issuer,
        client_id=config.client_id,
        client_secret_set=bool(config.client_secret_ciphertext),
        display_name=config.display_name,
        allowed_domains=list(config.allowed_domains),
        role_mapping=service.rules(config),
        default_grants=service.default_grants(config),
        group_claim=config.group_claim,
        strict=config.strict,
        password_login=config.password_login,
        login_url=f"/ui/sso/login?tenant={name}",
        redirect_uri=callback_url(request),
    )


@router.get("", response_model=SsoRead)
async def read_sso(request: Request, session: SessionDep, principal: CurrentPrincipal) -> SsoRead:
    """The organisation's single sign-on settings (owners); the client secret is never shown."""
    return await sso_read(session, request, await service.get(session, principal=principal))


@router.put("", response_model=SsoRead)
async def put_sso(
    request: Request, session: SessionDep, principal: CurrentPrincipal, payload: SsoSettings
) -> SsoRead:
    """Set the OpenID provider, allowed email domains and claim-to-grant mapping (owners)."""
    keyring = state_of(request).write_policy.keyring
    config = await service.put(session, principal=principal, keyring=keyring, payload=payload)
    return await sso_read(session, request, config)
