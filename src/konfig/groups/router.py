from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.groups import service
from konfig.groups.schemas import GroupCreate, GroupGrants, GroupRead, Memberships
from konfig.input_guard import GuardedRoute
from konfig.users.schemas import UserRead

router = APIRouter(tags=["groups"], route_class=GuardedRoute)


@router.get("/groups", response_model=list[GroupRead])
async def list_groups(session: SessionDep, principal: CurrentPrincipal) -> object:
    """The tenant's groups, their grants and members (admins)."""
    return await service.list_groups(session, principal=principal)


@router.post("/groups", response_model=GroupRead, status_code=status.HTTP_201_CREATED)
async def create_group(
    session: SessionDep, principal: CurrentPrincipal, payload: GroupCreate
) -> object:
    """Make a group with grants no higher than your own role."""
    return await service.create(session, principal=principal, payload=payload)


@router.put("/groups/{group_id}/grants", response_model=GroupRead)
async def replace_group_grants(
    session: SessionDep, principal: CurrentPrincipal, group_id: uuid.UUID, payload: GroupGrants
) -> object:
    """Replace a group's grants; its members' logins and tokens follow at once."""
    return await service.replace_grants(
        session, principal=principal, group_id=group_id, payload=payload
    )


@router.delete("/groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(
    session: SessionDep, principal: CurrentPrincipal, group_id: uuid.UUID
) -> None:
    """Delete a group; its members lose what it granted."""
    await service.delete(session, principal=principal, group_id=group_id)


@router.put("/users/{user_id}/groups", response_model=UserRead)
async def set_user_groups(
    session: SessionDep, principal: CurrentPrincipal, user_id: uuid.UUID, payload: Memberships
) -> object:
    """Replace the groups a user belongs to (admins)."""
    return await service.set_memberships(
        session, principal=principal, user_id=user_id, payload=payload
    )
