"""Across environments: compare namespaces, copy values between them, search every key."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from konfig.auth.deps import CurrentPrincipal
from konfig.db.session import SessionDep
from konfig.environments import compare as comparison
from konfig.environments import search as searching
from konfig.environments import templates
from konfig.environments.schemas import ComparisonRead, CopyRequest, SearchRead
from konfig.environments.templates import (
    ConformanceRead,
    EnvironmentCreate,
    TemplateRead,
)
from konfig.input_guard import GuardedRoute
from konfig.namespaces import service as namespaces
from konfig.namespaces.schemas import NamespaceRead
from konfig.namespaces.templates import Template
from konfig.openapi import error_responses
from konfig.revisions.schemas import ChangeResult
from konfig.state import state_of

router = APIRouter(tags=["environments"], route_class=GuardedRoute)


@router.get("/compare", response_model=ComparisonRead, responses=error_responses(404))
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


@router.post("/compare/copy", response_model=ChangeResult, responses=error_responses(404))
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


@router.get("/namespaces/{namespace_id}/template", response_model=TemplateRead)
async def read_template(
    session: SessionDep, principal: CurrentPrincipal, namespace_id: uuid.UUID
) -> TemplateRead:
    """The template the namespace declares for the environments under it, and what governs it."""
    return await templates.read(session, principal=principal, namespace_id=namespace_id)


@router.put("/namespaces/{namespace_id}/template", response_model=TemplateRead)
async def put_template(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    payload: Template,
) -> TemplateRead:
    """Declare the template every environment under the namespace keeps to (admins)."""
    return await templates.put(
        session,
        policy=state_of(request).write_policy,
        principal=principal,
        namespace_id=namespace_id,
        template=payload,
    )


@router.delete("/namespaces/{namespace_id}/template", response_model=TemplateRead)
async def delete_template(
    request: Request, session: SessionDep, principal: CurrentPrincipal, namespace_id: uuid.UUID
) -> TemplateRead:
    """Drop the namespace's template (admins): its environments are no longer checked."""
    return await templates.put(
        session,
        policy=state_of(request).write_policy,
        principal=principal,
        namespace_id=namespace_id,
        template=None,
    )


@router.get("/namespaces/{namespace_id}/conformance", response_model=ConformanceRead)
async def read_conformance(
    request: Request, session: SessionDep, principal: CurrentPrincipal, namespace_id: uuid.UUID
) -> ConformanceRead:
    """Each environment against the template: missing required keys, wrong types, unknown keys."""
    return await templates.conformance(
        session,
        policy=state_of(request).write_policy,
        principal=principal,
        namespace_id=namespace_id,
    )


@router.post(
    "/namespaces/{namespace_id}/environments",
    response_model=NamespaceRead,
    status_code=status.HTTP_201_CREATED,
)
async def create_environment(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    payload: EnvironmentCreate,
) -> NamespaceRead:
    """Create a namespace under the template's namespace, pre-filled with its defaults."""
    created = await templates.create_environment(
        session,
        policy=state_of(request).write_policy,
        principal=principal,
        namespace_id=namespace_id,
        payload=payload,
    )
    return await namespaces.render_one(session, namespace=created)
