from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from starlette.responses import Response

from konfig.auth.deps import CurrentPrincipal
from konfig.backups import restore, service
from konfig.backups.schemas import BackupDetail, BackupRead, RestoreRequest, RestoreResult
from konfig.backups.service import Backups
from konfig.backups.store import ID_PATTERN
from konfig.db.session import SessionDep
from konfig.input_guard import GuardedRoute
from konfig.pagination import CursorQuery, LimitQuery, Page, clamp
from konfig.state import state_of

router = APIRouter(prefix="/backups", tags=["backups"], route_class=GuardedRoute)


def _backups(request: Request) -> Backups:
    return state_of(request).backups


BackupsDep = Annotated[Backups, Depends(_backups)]
BackupId = Annotated[
    str,
    Path(pattern=ID_PATTERN, description="The backup's UTC timestamp, e.g. 20261123T041500.123Z"),
]


@router.post("", response_model=BackupDetail, status_code=status.HTTP_201_CREATED)
async def create_backup(
    session: SessionDep, principal: CurrentPrincipal, backups: BackupsDep
) -> BackupDetail:
    """Back up the tenant's namespaces and entries now (admins)."""
    return await service.create(session, backups=backups, principal=principal)


@router.get("", response_model=Page[BackupRead])
async def list_backups(
    session: SessionDep,
    principal: CurrentPrincipal,
    backups: BackupsDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[BackupRead]:
    """The tenant's backups, newest first (admins)."""
    return await service.list_page(
        session, backups=backups, principal=principal, cursor=cursor, limit=clamp(limit)
    )


@router.get("/{backup_id}", response_model=BackupDetail)
async def read_backup(
    session: SessionDep, principal: CurrentPrincipal, backups: BackupsDep, backup_id: BackupId
) -> BackupDetail:
    """One backup: when, why, its namespaces, and whether its checksum holds (admins)."""
    return await service.get(session, backups=backups, principal=principal, backup_id=backup_id)


@router.get(
    "/{backup_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}}, "description": "The backup file"}},
)
async def download_backup(
    session: SessionDep, principal: CurrentPrincipal, backups: BackupsDep, backup_id: BackupId
) -> Response:
    """The backup file itself, YAML with values still encrypted (admins)."""
    content = await service.download(
        session, backups=backups, principal=principal, backup_id=backup_id
    )
    return Response(
        content,
        media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{backup_id}.yaml"'},
    )


@router.post("/{backup_id}/restore", response_model=RestoreResult)
async def restore_backup(
    session: SessionDep,
    principal: CurrentPrincipal,
    backups: BackupsDep,
    backup_id: BackupId,
    payload: RestoreRequest | None = None,
) -> RestoreResult:
    """Restore a backup as one new revision per namespace, or with ``dry_run`` show the diff."""
    return await restore.restore_for(
        session,
        backups=backups,
        principal=principal,
        backup_id=backup_id,
        request=payload or RestoreRequest(),
    )
