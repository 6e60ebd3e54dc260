"""The flags API: a namespace's flags with their use, and a flag's evaluations over time.

Flags are written like any entry (``PUT …/configs/{key}`` with ``value_type: flag``) and
evaluated over OFREP (``konfig.delivery.ofrep``); these routes tell people how they are used.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from konfig.analytics.evaluations import CountKey
from konfig.auth.deps import CurrentPrincipal
from konfig.configs.params import KeyPath
from konfig.db.session import SessionDep
from konfig.flags import service
from konfig.flags.schemas import FlagEvaluations, FlagList
from konfig.input_guard import GuardedRoute
from konfig.state import state_of

router = APIRouter(
    prefix="/namespaces/{namespace_id}/flags", tags=["flags"], route_class=GuardedRoute
)


stale_router = APIRouter(prefix="/flags", tags=["flags"], route_class=GuardedRoute)


def _pending(request: Request) -> dict[CountKey, int]:
    """This replica's evaluation counts not written yet."""
    return state_of(request).delivery.analytics.evaluations.unwritten()


@router.get("", response_model=FlagList)
async def list_flags(
    request: Request, session: SessionDep, principal: CurrentPrincipal, namespace_id: uuid.UUID
) -> FlagList:
    """The namespace's flags: state, variants, targeting, when each last changed and was last
    evaluated, evaluations counted, and whether it is stale."""
    state = state_of(request)
    flags = await service.list_flags(
        session,
        policy=state.write_policy,
        principal=principal,
        namespace_id=namespace_id,
        pending=_pending(request),
        stale_days=state.settings.flag_stale_days,
    )
    return FlagList(items=flags)


@router.get("/{key}/evaluations", response_model=FlagEvaluations)
async def flag_evaluations(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    key: KeyPath,
    hours: Annotated[int, Query(ge=1, le=24 * 90, description="How far back")] = 24,
) -> FlagEvaluations:
    """A flag's evaluations per hour and variant (OFREP answers, all replicas)."""
    return await service.evaluations(
        session,
        principal=principal,
        namespace_id=namespace_id,
        key=key,
        hours=hours,
        pending=_pending(request),
    )


@stale_router.get("/stale", response_model=FlagList)
async def stale_flags(
    request: Request, session: SessionDep, principal: CurrentPrincipal
) -> FlagList:
    """Every flag of your tenant (that you may read) neither changed nor evaluated for
    KONFIG_FLAG_STALE_DAYS: candidates for removal."""
    state = state_of(request)
    flags = await service.stale_flags(
        session,
        policy=state.write_policy,
        principal=principal,
        pending=_pending(request),
        stale_days=state.settings.flag_stale_days,
    )
    return FlagList(items=flags)
