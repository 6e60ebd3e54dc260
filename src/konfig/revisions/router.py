from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BeforeValidator

from konfig.auth.deps import CurrentPrincipal
from konfig.configs import service as configs
from konfig.configs.answers import proposed
from konfig.configs.params import (
    PROPOSED,
    PROPOSED_RESULT,
    IfMatch,
    KeyPath,
    Message,
    Reveal,
    answer,
)
from konfig.configs.schemas import ConfigRead
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp
from konfig.paths import API_PREFIX
from konfig.revisions import documents, exports, formats, rollbacks, service
from konfig.revisions.documents import Mode
from konfig.revisions.formats import Format
from konfig.revisions.schemas import (
    MAX_NUMBER,
    ChangeResult,
    DiffRead,
    Document,
    DocumentRead,
    EntryRollback,
    EntryVersionRead,
    NamespaceRollback,
    RevisionRead,
    SnapshotRead,
)
from konfig.revisions.writer import Proposed, WritePolicy
from konfig.state import state_of

entry_router = APIRouter(
    prefix="/namespaces/{namespace_id}/configs", tags=["configs"], route_class=GuardedRoute
)


def _iso_time(value: Any) -> Any:
    """A time in ISO 8601 only (pydantic alone would also take a number, as Unix time)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("must be an ISO 8601 time, such as 2026-12-07T12:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_time)]
router = APIRouter(
    prefix="/namespaces/{namespace_id}", tags=["revisions"], route_class=GuardedRoute
)

DryRun = Annotated[bool, Query(description="Answer what would change, write nothing")]
ContentType = Annotated[str | None, Header(include_in_schema=False)]
IfMatchRevision = Annotated[
    str | None, Header(description="ETag (namespace revision) of the state you are changing")
]


def _policy(request: Request) -> WritePolicy:
    return state_of(request).write_policy


def _body_schema(*types: str, text: bool = False) -> dict[str, Any]:
    schema = Document.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    content: dict[str, Any] = {t: {"schema": schema} for t in types}
    if text:
        content["text/plain"] = {"schema": {"type": "string"}}
    return {"requestBody": {"required": True, "content": content}}


def _changed(response: Response, result: ChangeResult) -> ChangeResult:
    response.headers["ETag"] = service.revision_etag(result.revision)
    if result.change_request is not None:  # a protected namespace: proposed, not committed
        response.status_code = 202
        response.headers["Location"] = f"{API_PREFIX}/change-requests/{result.change_request.id}"
    return result


@entry_router.get("/{key}/history", response_model=Page[EntryVersionRead])
async def entry_history(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    key: KeyPath,
    reveal: Reveal = False,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[EntryVersionRead]:
    """Every version of one key, newest first, deletions included (secrets masked)."""
    reveal = configs.may_reveal(principal, reveal)
    return await service.history(
        session,
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        key=key,
        reveal=reveal,
        cursor=cursor,
        limit=clamp(limit),
    )


@entry_router.post("/{key}/rollback", response_model=ConfigRead, responses=PROPOSED)
async def rollback_entry(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    key: KeyPath,
    payload: EntryRollback,
    if_match: IfMatch = None,
    message: Message = None,
) -> object:
    """Write a new version equal to an old one; a deleted key comes back (202 with the change
    request on a protected namespace)."""
    policy = _policy(request)
    try:
        entry = await rollbacks.rollback_entry(
            session,
            policy=policy,
            principal=principal,
            namespace_id=namespace_id,
            key=key,
            payload=payload,
            message=message,
            if_match=if_match,
        )
    except Proposed as done:
        return proposed(done.proposal).response()
    return answer(response, policy, entry, reveal=False)


@router.get("/revisions", response_model=Page[RevisionRead])
async def list_revisions(
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    key: Annotated[str | None, Query(max_length=255, description="Only those touching it")] = None,
    author: Annotated[
        str | None, Query(max_length=320, description="Only those by this email or actor")
    ] = None,
    since: Annotated[IsoTime | None, Query(description="Only those from this time")] = None,
    until: Annotated[IsoTime | None, Query(description="Only those before this time")] = None,
) -> Page[RevisionRead]:
    """The namespace's revisions, newest first, with the keys each one changed."""
    return await service.revisions(
        session,
        principal=principal,
        namespace_id=namespace_id,
        cursor=cursor,
        limit=clamp(limit),
        key=key,
        author=author,
        since=since,
        until=until,
    )


@router.get("/revisions/{revision}", response_model=SnapshotRead)
async def read_revision(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    revision: Annotated[
        int, Path(ge=0, le=MAX_NUMBER, description="0 is the namespace before any change")
    ],
    reveal: Reveal = False,
) -> SnapshotRead:
    """The whole namespace exactly as it was at one revision."""
    reveal = configs.may_reveal(principal, reveal)
    return await service.snapshot(
        session,
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        revision=revision,
        reveal=reveal,
    )


@router.get("/diff", response_model=DiffRead)
async def diff_revisions(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    from_revision: Annotated[
        int, Query(alias="from", ge=0, le=MAX_NUMBER, description="The older state")
    ],
    to_revision: Annotated[
        int | None,
        Query(alias="to", ge=0, le=MAX_NUMBER, description="The newer state (default: latest)"),
    ] = None,
    reveal: Reveal = False,
) -> DiffRead:
    """Keys added, removed and changed between two revisions, with old and new values."""
    reveal = configs.may_reveal(principal, reveal)
    return await service.diff(
        session,
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        from_revision=from_revision,
        to_revision=to_revision,
        reveal=reveal,
    )


@router.post("/rollback", response_model=ChangeResult, responses=PROPOSED_RESULT)
async def rollback_namespace(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    payload: NamespaceRollback,
    dry_run: DryRun = False,
    reveal: Reveal = False,
    if_match: IfMatchRevision = None,
    message: Message = None,
) -> ChangeResult:
    """Restore the namespace as it was at a revision, as one new revision (editors)."""
    reveal = configs.may_reveal(principal, reveal)
    result = await rollbacks.rollback(
        session,
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        payload=payload,
        message=message,
        if_match=if_match,
        dry_run=dry_run,
        reveal=reveal,
    )
    return _changed(response, result)


@router.get("/document", response_model=DocumentRead)
async def read_document(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    reveal: Reveal = False,
) -> DocumentRead:
    """Every entry in document shape; the ETag is the namespace revision, for If-Match."""
    reveal = configs.may_reveal(principal, reveal)
    entries, revision = await exports.document(
        session,
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        reveal=reveal,
    )
    response.headers["ETag"] = service.revision_etag(revision)
    return DocumentRead.model_validate({"entries": entries})


@router.put(
    "/document",
    response_model=ChangeResult,
    responses=PROPOSED_RESULT,
    openapi_extra=_body_schema("application/json", *sorted(formats.YAML_MEDIA_TYPES)),
)
async def replace_document(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    dry_run: DryRun = False,
    reveal: Reveal = False,
    if_match: IfMatchRevision = None,
    message: Message = None,
    content_type: ContentType = None,
) -> ChangeResult:
    """Replace every entry from one JSON or YAML document, atomically, in one revision."""
    reveal = configs.may_reveal(principal, reveal)
    result = await documents.put_document(
        session,
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        body=await request.body(),
        content_type=content_type,
        dry_run=dry_run,
        if_match=if_match,
        message=message,
        reveal=reveal,
    )
    return _changed(response, result)


@router.get(
    "/export",
    response_class=Response,
    # Each media type once, in the formats' order (a set's order changes from process to process).
    responses={200: {"content": {t: {} for t in dict.fromkeys(formats.MEDIA_TYPES.values())}}},
)
async def export_namespace(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    format: Annotated[Format, Query(description="yaml, json, env or properties")] = "yaml",
    reveal: Reveal = False,
    revision: Annotated[
        int | None, Query(ge=0, le=MAX_NUMBER, description="A past revision")
    ] = None,
) -> Response:
    """The namespace as a file; secrets masked unless revealed (editors)."""
    reveal = configs.may_reveal(principal, reveal)
    body, shown = await exports.export(
        session,
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        kind=format,
        reveal=reveal,
        revision=revision,
    )
    return Response(
        body,
        media_type=formats.MEDIA_TYPES[format],
        headers={"ETag": service.revision_etag(shown)},
    )


@router.post(
    "/import",
    response_model=ChangeResult,
    responses=PROPOSED_RESULT,
    openapi_extra=_body_schema("application/json", "application/yaml", text=True),
)
async def import_namespace(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
    namespace_id: uuid.UUID,
    format: Annotated[
        Format | None, Query(description="yaml, json, env or properties (default: Content-Type)")
    ] = None,
    mode: Annotated[Mode, Query(description="merge: add and change; replace: also delete")] = (
        "merge"
    ),
    dry_run: DryRun = False,
    reveal: Reveal = False,
    if_match: IfMatchRevision = None,
    message: Message = None,
    content_type: ContentType = None,
) -> ChangeResult:
    """Import a yaml, json, env or properties file as one revision (editors)."""
    reveal = configs.may_reveal(principal, reveal)
    result = await documents.import_file(
        session,
        policy=_policy(request),
        principal=principal,
        namespace_id=namespace_id,
        body=await request.body(),
        content_type=content_type,
        kind=format,
        mode=mode,
        dry_run=dry_run,
        if_match=if_match,
        message=message,
        reveal=reveal,
    )
    return _changed(response, result)
