"""The analytics API: a namespace's clients (who holds which revision, the stale ones), its
traffic over time, when each of its keys was last delivered, and a token's use.

Everything the read path records is kept in memory and written every
``KONFIG_ANALYTICS_FLUSH_SECONDS``; these answers add this replica's unwritten part to what
every replica wrote.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from konfig.analytics import service
from konfig.analytics.recorder import Recorder
from konfig.analytics.schemas import (
    ClientsRead,
    KeyReads,
    Period,
    TokenUsage,
    TrafficRead,
    UnreadKeys,
)
from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.state import state_of

router = APIRouter(
    prefix="/namespaces/{namespace_id}", tags=["analytics"], route_class=GuardedRoute
)
tokens_router = APIRouter(prefix="/tokens", tags=["analytics"], route_class=GuardedRoute)
keys_router = APIRouter(prefix="/keys", tags=["analytics"], route_class=GuardedRoute)

UnreadDays = Annotated[
    float | None,
    Query(gt=0, le=3650, description="Unread after this many days (KONFIG_ANALYTICS_UNREAD_DAYS)"),
]
PeriodQuery = Annotated[Period, Query(description="The chart's range: the last day or week")]


def _recorder(request: Request) -> Recorder:
    return state_of(request).delivery.analytics


def current_state(request: Request) -> service.CurrentState:
    """The namespace's current state as this replica's read path resolves it."""
    cache = state_of(request).delivery.cache

    async def current(tenant_id: uuid.UUID, name: str) -> tuple[str, list[uuid.UUID]] | None:
        resolved = await cache.resolve(tenant_id, name)
        if resolved is None:
            return None
        return resolved.etag, [layer.id for layer in resolved.resolution.layers]

    return current


@router.get("/clients", response_model=ClientsRead)
async def list_clients(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    window_hours: Annotated[
        float, Query(gt=0, le=24 * 90, description="Instances seen within this many hours")
    ] = 24,
) -> ClientsRead:
    """The instances reading the namespace, the revision each holds, when each last read or was
    notified, and the stale ones (still behind KONFIG_ANALYTICS_STALE_SECONDS after a change)."""
    return await service.clients(
        session,
        principal=principal,
        namespace_id=namespace_id,
        recorder=_recorder(request),
        current=current_state(request),
        stale_seconds=state_of(request).settings.analytics_stale_seconds,
        window_hours=window_hours,
    )


@router.get("/traffic", response_model=TrafficRead)
async def namespace_traffic(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    period: PeriodQuery = "day",
) -> TrafficRead:
    """Reads, 304s and pushes of the namespace over the last day (hourly) or week (6-hourly)."""
    return await service.traffic(
        session,
        principal=principal,
        namespace_id=namespace_id,
        recorder=_recorder(request),
        period=period,
    )


@router.get("/key-reads", response_model=KeyReads)
async def key_reads(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    unread_days: UnreadDays = None,
) -> KeyReads:
    """The namespace's own keys with the last time a resolved read delivered each, and the ones
    no read delivered for the unread period: candidates for clean-up."""
    settings = state_of(request).settings
    return await service.key_reads(
        session,
        principal=principal,
        namespace_id=namespace_id,
        recorder=_recorder(request),
        unread_days=unread_days or settings.analytics_unread_days,
    )


@keys_router.get("/unread", response_model=UnreadKeys)
async def unread_keys(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    unread_days: UnreadDays = None,
) -> UnreadKeys:
    """Every key of your tenant (that you may read) no resolved read delivered for
    KONFIG_ANALYTICS_UNREAD_DAYS: candidates for clean-up."""
    return await service.unread_keys(
        session,
        principal=principal,
        recorder=_recorder(request),
        unread_days=unread_days or state_of(request).settings.analytics_unread_days,
    )


@tokens_router.get("/{token_id}/usage", response_model=TokenUsage)
async def token_usage(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    token_id: uuid.UUID,
    period: PeriodQuery = "day",
) -> TokenUsage:
    """A token's requests over time, the namespaces it read (with instances), and when it was
    last used."""
    return await service.token_usage(
        session,
        principal=principal,
        token_id=token_id,
        recorder=_recorder(request),
        period=period,
    )
