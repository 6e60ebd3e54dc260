from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp
from konfig.users import service
from konfig.users.schemas import GrantsUpdate, MeUpdate, UserCreate, UserRead, UserUpdate

router = APIRouter(prefix="/users", tags=["users"], route_class=GuardedRoute)


@router.get("", response_model=Page[UserRead])
async def list_users(
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[UserRead]:
    """List the tenant's users (admins and above; superusers see every tenant)."""
    return await service.list_page(session, principal=principal, cursor=cursor, limit=clamp(limit))


@router.post("", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def create_user(
    session: SessionDep, principal: CurrentPrincipal, payload: UserCreate
) -> object:
    """Add a user to the tenant with a role (or grants) no higher than your own."""
    return await service.create(session, principal=principal, payload=payload)


@router.get("/me", response_model=UserRead)
async def read_me(session: SessionDep, principal: CurrentPrincipal) -> object:
    """Your own account."""
    return await service.get_me(session, principal=principal)


@router.put("/me", response_model=UserRead)
async def update_me(session: SessionDep, principal: CurrentPrincipal, payload: MeUpdate) -> object:
    """Change your email, name or password (a new password needs the current one)."""
    return await service.update_me(session, principal=principal, payload=payload)


@router.get("/{user_id}", response_model=UserRead)
async def read_user(session: SessionDep, principal: CurrentPrincipal, user_id: uuid.UUID) -> object:
    """One user of the tenant."""
    return await service.get(session, principal=principal, user_id=user_id)


@router.patch("/{user_id}", response_model=UserRead)
async def update_user(
    session: SessionDep, principal: CurrentPrincipal, user_id: uuid.UUID, payload: UserUpdate
) -> object:
    """Change a user's role, name or active flag; the last owner stays an owner."""
    return await service.update(session, principal=principal, user_id=user_id, payload=payload)


@router.put("/{user_id}/grants", response_model=UserRead)
async def replace_grants(
    session: SessionDep, principal: CurrentPrincipal, user_id: uuid.UUID, payload: GrantsUpdate
) -> object:
    """Replace a user's grants (roles per namespace pattern); their tokens follow at once."""
    return await service.replace_grants(
        session, principal=principal, user_id=user_id, payload=payload
    )


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(session: SessionDep, principal: CurrentPrincipal, user_id: uuid.UUID) -> None:
    """Remove a user; their tokens stop working at once."""
    await service.delete(session, principal=principal, user_id=user_id)
