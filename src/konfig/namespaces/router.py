from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.namespaces import service
from konfig.namespaces.schemas import NamespaceCreate, NamespaceRead, NamespaceUpdate
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp
from konfig.state import state_of

router = APIRouter(prefix="/namespaces", tags=["namespaces"], route_class=GuardedRoute)


@router.post("", response_model=NamespaceRead, status_code=status.HTTP_201_CREATED)
async def create_namespace(
    session: SessionDep, principal: CurrentPrincipal, payload: NamespaceCreate
) -> NamespaceRead:
    """Create a namespace (admins); ``includes`` names namespaces merged under it."""
    namespace = await service.create(session, principal=principal, payload=payload)
    return await service.render_one(session, namespace=namespace)


@router.get("", response_model=Page[NamespaceRead])
async def list_namespaces(
    session: SessionDep,
    principal: CurrentPrincipal,
    prefix: Annotated[
        str | None, Query(max_length=255, description="Only names starting with this")
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[NamespaceRead]:
    """List the tenant's namespaces by name."""
    return await service.list_page(
        session, principal=principal, prefix=prefix, cursor=cursor, limit=clamp(limit)
    )


@router.get("/{namespace_id}", response_model=NamespaceRead)
async def read_namespace(
    session: SessionDep, principal: CurrentPrincipal, namespace_id: uuid.UUID
) -> NamespaceRead:
    """One namespace, with its revision and entry count."""
    namespace = await service.get(session, principal=principal, namespace_id=namespace_id)
    return await service.render_one(session, namespace=namespace)


@router.patch("/{namespace_id}", response_model=NamespaceRead)
async def update_namespace(
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    payload: NamespaceUpdate,
) -> NamespaceRead:
    """Change a namespace's description or includes (admins)."""
    namespace = await service.update(
        session, principal=principal, namespace_id=namespace_id, payload=payload
    )
    return await service.render_one(session, namespace=namespace)


@router.delete("/{namespace_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_namespace(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    force: Annotated[bool, Query(description="Also delete the entries it holds")] = False,
) -> None:
    """Delete a namespace (admins); one that holds entries needs ``?force=true``; one that
    others include or reference (``${ref:…}``) cannot go (409 naming them)."""
    await service.delete(
        session,
        principal=principal,
        namespace_id=namespace_id,
        force=force,
        policy=state_of(request).write_policy,
    )
