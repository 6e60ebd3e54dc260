"""Across environments: compare namespaces, copy values between them, search every key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.environments import compare as comparison
from konfig.environments import search as searching
from konfig.environments.schemas import ComparisonRead, CopyRequest, SearchRead
from konfig.input_guard import GuardedRoute
from konfig.revisions.schemas import ChangeResult
from konfig.state import state_of

router = APIRouter(tags=["environments"], route_class=GuardedRoute)


@router.get("/compare", response_model=ComparisonRead)
async def compare_namespaces(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespaces: Annotated[
        str,
        Query(
            max_length=3000,
            description="Two to ten namespace names, separated by commas",
            examples=["payments/staging,payments/production"],
        ),
    ],
    resolved: Annotated[
        bool, Query(description="Compare what services receive (merged) rather than own entries")
    ] = False,
    differences: Annotated[bool, Query(description="Leave out keys equal everywhere")] = False,
) -> ComparisonRead:
    """Namespaces side by side, key by key; secrets compared by fingerprint, never revealed."""
    return await comparison.compare(
        session,
        policy=state_of(request).write_policy,
        principal=principal,
        names=comparison.parse_names(namespaces),
        resolved=resolved,
        only_differences=differences,
    )


@router.post("/compare/copy", response_model=ChangeResult)
async def copy_values(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    payload: CopyRequest,
    dry_run: Annotated[bool, Query(description="Answer what would change, write nothing")] = False,
) -> ChangeResult:
    """Copy keys' values from one namespace to another as one revision."""
    return await comparison.copy(
        session,
        policy=state_of(request).write_policy,
        principal=principal,
        request=payload,
        dry_run=dry_run,
    )


@router.get("/search", response_model=SearchRead)
async def search_keys(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    q: Annotated[str, Query(min_length=1, max_length=searching.MAX_QUERY)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SearchRead:
    """Keys whose name, description or non-secret value contains ``q``, where you may read."""
    state = state_of(request)
    return await searching.search(
        session,
        index=state.search_index,
        keyring=state.write_policy.keyring,
        principal=principal,
        q=q,
        limit=limit,
    )
