from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from konfig.auth.deps import CurrentPrincipal
from konfig.configs import answers, service
from konfig.configs.params import PROPOSED, IfMatch, IfNoneMatch, KeyPath, Message, Reveal, answer
from konfig.configs.schemas import ConfigCreate, ConfigPatch, ConfigRead, ConfigReplace
from konfig.configs.writes import EntryWriter
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp
from konfig.revisions.writer import WritePolicy
from konfig.state import state_of

router = APIRouter(
    prefix="/namespaces/{namespace_id}/configs", tags=["configs"], route_class=GuardedRoute
)


def _policy(request: Request) -> WritePolicy:
    return state_of(request).write_policy


def _writer(request: Request) -> EntryWriter:
    return state_of(request).entry_writer


@router.get("", response_model=Page[ConfigRead])
async def list_configs(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    reveal: Reveal = False,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[ConfigRead]:
    """List the namespace's entries by key (secrets masked unless revealed)."""
    reveal = service.may_reveal(principal, reveal)
    entries, next_cursor = await service.list_page(
        session,
        principal=principal,
        namespace_id=namespace_id,
        cursor=cursor,
        limit=clamp(limit),
        reveal=reveal,
    )
    return service.render_page(_policy(request), entries, next_cursor, reveal=reveal)


@router.post("", response_model=ConfigRead, status_code=status.HTTP_201_CREATED, responses=PROPOSED)
async def create_config(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    payload: ConfigCreate,
    if_none_match: IfNoneMatch = None,
    message: Message = None,
) -> Response:
    """Create an entry (editors); the value is validated against its type and schema."""
    written = await answers.create(
        session,
        writer=_writer(request),
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        payload=payload,
        message=message,
        if_none_match=if_none_match,
    )
    return written.response()


@router.get("/{key}", response_model=ConfigRead)
async def read_config(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    key: KeyPath,
    reveal: Reveal = False,
) -> ConfigRead:
    """One entry, with its version as the ETag."""
    reveal = service.may_reveal(principal, reveal)
    entry = await service.get(
        session, principal=principal, namespace_id=namespace_id, key=key, reveal=reveal
    )
    return answer(response, _policy(request), entry, reveal=reveal)


@router.put(
    "/{key}",
    response_model=ConfigRead,
    responses={
        201: {"model": ConfigRead, "description": "Created: the key did not exist"},
        **PROPOSED,
    },
)
async def replace_config(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    key: KeyPath,
    payload: ConfigReplace,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
    message: Message = None,
) -> Response:
    """Replace an entry whole, or create it; ``If-Match`` guards against lost updates."""
    written = await answers.replace(
        session,
        writer=_writer(request),
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        key=key,
        payload=payload,
        message=message,
        if_match=if_match,
        if_none_match=if_none_match,
    )
    return written.response()


@router.patch("/{key}", response_model=ConfigRead, responses=PROPOSED)
async def patch_config(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    key: KeyPath,
    payload: ConfigPatch,
    if_match: IfMatch = None,
    message: Message = None,
) -> Response:
    """Change some fields of an entry; the result is validated whole."""
    written = await answers.patch(
        session,
        writer=_writer(request),
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        key=key,
        payload=payload,
        message=message,
        if_match=if_match,
    )
    return written.response()


@router.delete(
    "/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=PROPOSED,
)
async def delete_config(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    key: KeyPath,
    if_match: IfMatch = None,
    message: Message = None,
) -> Response:
    """Delete an entry (its history stays)."""
    written = await answers.delete(
        session,
        writer=_writer(request),
        principal=principal,
        namespace_id=namespace_id,
        key=key,
        message=message,
        if_match=if_match,
    )
    return written.response()
