"""Protection policies (admins) and change requests: list, read, submit, review, merge."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from konfig.auth.deps import CurrentPrincipal
from konfig.changes import policies, service
from konfig.changes.schemas import (
    ChangeRequestRead,
    ChangeRequestSummary,
    CommentCreate,
    PolicyCreate,
    PolicyRead,
    PolicyUpdate,
    ReviewCreate,
    SubmitCreate,
)
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp
from konfig.revisions.writer import WritePolicy
from konfig.state import state_of

router = APIRouter(tags=["change requests"], route_class=GuardedRoute)
POLICIES = "/protection-policies"
REQUESTS = "/change-requests"


def _policy(request: Request) -> WritePolicy:
    return state_of(request).write_policy


@router.get(POLICIES, response_model=list[PolicyRead])
async def list_policies(session: SessionDep, principal: CurrentPrincipal) -> object:
    """The tenant's protection policies."""
    return await policies.list_policies(session, principal=principal)


@router.post(POLICIES, response_model=PolicyRead, status_code=status.HTTP_201_CREATED)
async def create_policy(
    session: SessionDep, principal: CurrentPrincipal, payload: PolicyCreate
) -> object:
    """Protect the namespaces a pattern matches (admins)."""
    return await policies.create(session, principal=principal, payload=payload)


@router.get(POLICIES + "/{policy_id}", response_model=PolicyRead)
async def read_policy(
    session: SessionDep, principal: CurrentPrincipal, policy_id: uuid.UUID
) -> object:
    """One protection policy."""
    return await policies.get(session, principal=principal, policy_id=policy_id)


@router.patch(POLICIES + "/{policy_id}", response_model=PolicyRead)
async def update_policy(
    session: SessionDep, principal: CurrentPrincipal, policy_id: uuid.UUID, payload: PolicyUpdate
) -> object:
    """Change the fields sent of a protection policy (admins)."""
    return await policies.update(session, principal=principal, policy_id=policy_id, payload=payload)


@router.delete(POLICIES + "/{policy_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_policy(
    session: SessionDep, principal: CurrentPrincipal, policy_id: uuid.UUID
) -> None:
    """Remove a protection policy (admins); open change requests stay open."""
    await policies.delete(session, principal=principal, policy_id=policy_id)


@router.get(REQUESTS, response_model=Page[ChangeRequestSummary])
async def list_change_requests(
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: Annotated[uuid.UUID | None, Query(description="Only this namespace's")] = None,
    status: Annotated[
        str | None, Query(description="draft, open, approved, rejected or merged")
    ] = None,
    mine: Annotated[bool, Query(description="Only the ones you wrote")] = False,
    waiting_for_me: Annotated[
        bool, Query(description="Only open ones you may approve and have not yet")
    ] = False,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> object:
    """Change requests, newest first (drafts: only your own)."""
    return await service.list_page(
        session,
        principal=principal,
        namespace_id=namespace_id,
        status=status,
        mine=mine,
        waiting_for_me=waiting_for_me,
        cursor=cursor,
        limit=clamp(limit),
    )


@router.get(REQUESTS + "/{request_id}", response_model=ChangeRequestRead)
async def read_change_request(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    request_id: uuid.UUID,
    reveal: Annotated[bool, Query(description="Show secret values (editors and above)")] = False,
) -> object:
    """A change request: its diff (secrets masked unless revealed) and its conversation."""
    return await service.get(
        session, principal=principal, policy=_policy(request), request_id=request_id, reveal=reveal
    )


@router.post(REQUESTS + "/{request_id}/submit", response_model=ChangeRequestRead)
async def submit_change_request(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    request_id: uuid.UUID,
    payload: SubmitCreate | None = None,
) -> object:
    """Hand your draft over for review (its author)."""
    return await service.submit(
        session,
        principal=principal,
        policy=_policy(request),
        request_id=request_id,
        title=payload.title if payload else None,
    )


@router.post(REQUESTS + "/{request_id}/approve", response_model=ChangeRequestRead)
async def approve_change_request(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    request_id: uuid.UUID,
    payload: ReviewCreate | None = None,
) -> object:
    """Approve an open change request (an approver other than its author)."""
    return await service.approve(
        session,
        principal=principal,
        policy=_policy(request),
        request_id=request_id,
        comment=payload.comment if payload else None,
    )


@router.post(REQUESTS + "/{request_id}/reject", response_model=ChangeRequestRead)
async def reject_change_request(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    request_id: uuid.UUID,
    payload: ReviewCreate | None = None,
) -> object:
    """Reject a change request (an approver), or withdraw it (its author)."""
    return await service.reject(
        session,
        principal=principal,
        policy=_policy(request),
        request_id=request_id,
        comment=payload.comment if payload else None,
    )


@router.post(REQUESTS + "/{request_id}/merge", response_model=ChangeRequestRead)
async def merge_change_request(
    request: Request, session: SessionDep, principal: CurrentPrincipal, request_id: uuid.UUID
) -> object:
    """Commit an approved change request as one revision (409 naming keys that moved on)."""
    return await service.merge(
        session, principal=principal, policy=_policy(request), request_id=request_id
    )


@router.post(REQUESTS + "/{request_id}/comment", response_model=ChangeRequestRead)
async def comment_change_request(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    request_id: uuid.UUID,
    payload: CommentCreate,
) -> object:
    """Add a comment to a change request's conversation."""
    return await service.comment(
        session,
        principal=principal,
        policy=_policy(request),
        request_id=request_id,
        body=payload.body,
    )
