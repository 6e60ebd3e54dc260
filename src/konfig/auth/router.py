from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, status
from pydantic import ValidationError

from konfig.auth import service
from konfig.auth.deps import CurrentPrincipal
from konfig.auth.schemas import (
    LoginRequest,
    Me,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    TenantRead,
    TokenPair,
)
from konfig.db.session import SessionDep
from konfig.errors import ValidationFailed
from konfig.input_guard import GuardedRoute, bad_text, json_refusal
from konfig.openapi import error_responses
from konfig.ratelimit import limit_credentials
from konfig.state import state_of
from konfig.tenants import repository as tenants
from konfig.users import service as users
from konfig.users.schemas import UserRead

router = APIRouter(prefix="/auth", tags=["auth"], route_class=GuardedRoute)

_LOGIN_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": LoginRequest.model_json_schema()},
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["username", "password"],
                "properties": {
                    "username": {"type": "string", "description": "Your email"},
                    "password": {"type": "string", "format": "password"},
                    "grant_type": {"type": "string", "enum": ["password"]},
                },
            }
        },
    },
}


async def _login_payload(request: Request) -> LoginRequest:
    """Read ``{email, password}`` as JSON, or the OAuth2 password form Swagger's Authorize sends."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            refused = bad_text({k: v for k, v in form.multi_items() if isinstance(v, str)})
            if refused is not None:
                raise refused
            return LoginRequest(
                email=str(form.get("username") or form.get("email") or ""),
                password=str(form.get("password") or ""),
            )
        try:
            raw = await request.body()
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise json_refusal(raw, exc) from exc
        refused = bad_text(body)
        if refused is not None:
            raise refused
        return LoginRequest.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        first = errors[0]
        raise ValidationFailed(
            f"{'.'.join(first['loc'])}: {first['msg']}", {"errors": errors}
        ) from exc


@router.post(
    "/register",
    response_model=RegisterResponse,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409),
)
async def register(
    request: Request, session: SessionDep, payload: RegisterRequest
) -> RegisterResponse:
    """Create a tenant and its first user, who becomes its owner."""
    await limit_credentials(request, action="register", email=payload.email)
    tenant, user = await service.register(session, payload=payload)
    return RegisterResponse(
        tenant=TenantRead.model_validate(tenant), user=UserRead.model_validate(user)
    )


@router.post(
    "/login",
    response_model=TokenPair,
    openapi_extra={"requestBody": _LOGIN_BODY},
    responses=error_responses(401),
)
async def login(request: Request, session: SessionDep) -> TokenPair:
    """Exchange email and password (JSON, or the OAuth2 password form) for a token pair."""
    payload = await _login_payload(request)
    await limit_credentials(request, action="login", email=payload.email)
    return await service.login(session, policy=state_of(request).token_policy, payload=payload)


@router.post("/refresh", response_model=TokenPair, responses=error_responses(401))
async def refresh(request: Request, session: SessionDep, payload: RefreshRequest) -> TokenPair:
    """Spend a refresh token for a new pair (each refresh token works once)."""
    return await service.refresh(
        session, policy=state_of(request).token_policy, refresh_token=payload.refresh_token
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(session: SessionDep, principal: CurrentPrincipal) -> None:
    """End this login: its access and refresh tokens stop working."""
    await service.logout(session, principal=principal)


@router.get("/me", response_model=Me)
async def me(session: SessionDep, principal: CurrentPrincipal) -> Me:
    """Who you are signed in as."""
    user = await users.get_me(session, principal=principal)
    tenant = await tenants.get(session, tenant_id=user.tenant_id)
    return Me(
        **UserRead.model_validate(user).model_dump(), tenant_name=tenant.name if tenant else ""
    )
