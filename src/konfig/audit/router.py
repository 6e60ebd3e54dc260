from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from konfig.audit import service
from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp

router = APIRouter(prefix="/audit", tags=["audit"], route_class=GuardedRoute)

_TIME: dict[str, Any] = {"json_schema_extra": {"format": "date-time"}}


@router.get("", response_model=Page[dict[str, Any]])
async def list_audit_events(
    session: SessionDep,
    principal: CurrentPrincipal,
    actor: Annotated[str | None, Query(description="e.g. user:<id> or token:<id>")] = None,
    action: Annotated[
        str | None, Query(description="An action, or a prefix ending in '.' (config.)")
    ] = None,
    namespace: Annotated[str | None, Query(description="Namespace name")] = None,
    since: Annotated[str | None, Query(description="ISO 8601 time, inclusive", **_TIME)] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time, exclusive", **_TIME)] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[dict[str, Any]]:
    """The tenant's audit log, newest first (admins and above)."""
    return await service.list_page(
        session,
        principal=principal,
        actor=actor,
        action=action,
        namespace=namespace,
        since=since,
        until=until,
        cursor=cursor,
        limit=clamp(limit),
    )
