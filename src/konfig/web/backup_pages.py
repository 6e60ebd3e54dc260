"""Backups (admins): list, take one now, and restore one after reviewing its dry-run diff."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from konfig.backups import restore, service
from konfig.backups.schemas import EntryView, KeyChange, NamespaceRestore, RestoreRequest
from konfig.backups.service import Backups
from konfig.backups.store import ID_PATTERN
from konfig.state import state_of
from konfig.users.models import Role
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(prefix="/admin", route_class=UIRoute)

PER_PAGE = 30
BackupId = Annotated[str, Path(pattern=ID_PATTERN)]


@dataclass(frozen=True, slots=True)
class DiffLine:
    """A restore's key change in the shape the diff table shows (``old`` is now)."""

    key: str
    old: EntryView | None
    new: EntryView | None
    fields: list[str]


def restore_rows(report: NamespaceRestore) -> list[dict[str, Any]]:
    changes: list[tuple[str, KeyChange]] = [
        *(("added", c) for c in report.added),
        *(("removed", c) for c in report.removed),
        *(("changed", c) for c in report.changed),
    ]
    return sorted(
        (
            {"kind": kind, "item": DiffLine(c.key, c.before, c.after, c.fields)}
            for kind, c in changes
        ),
        key=lambda row: row["item"].key,
    )


def _backups(visitor: Visitor) -> Backups:
    found: Backups = state_of(visitor.request).backups
    return found


@router.get("/backups")
async def backup_list(
    visitor: SignedIn, cursor: str | None = Query(None, max_length=500)
) -> Response:
    """The organisation's backups, newest first (admins)."""
    visitor.principal.require(Role.admin)
    listed = await service.list_page(
        visitor.session,
        backups=_backups(visitor),
        principal=visitor.principal,
        cursor=cursor,
        limit=PER_PAGE,
    )
    return page(
        visitor.request,
        "backups.html",
        visitor,
        backups=listed.items,
        next_cursor=listed.next_cursor,
        paged=cursor is not None,
    )


@router.post("/backups")
async def create_backup(visitor: SignedIn) -> Response:
    """Back up every namespace now (admins)."""
    made = await service.create(
        visitor.session, backups=_backups(visitor), principal=visitor.principal
    )
    return redirect(
        visitor.request,
        "/ui/admin/backups",
        flash=f"Backed up {made.namespace_count} namespaces and {made.entry_count} entries "
        f"as {made.id}.",
    )


def _changes(report: NamespaceRestore) -> bool:
    return bool(
        report.created
        or report.description
        or report.includes
        or report.template
        or report.added
        or report.removed
        or report.changed
    )


@router.get("/backups/{backup_id}/restore")
async def restore_confirm(
    visitor: SignedIn,
    backup_id: BackupId,
    ns: Annotated[list[str], Query(max_length=10_000)] = [],  # noqa: B006
) -> Response:
    """What restoring the backup (or only the namespaces ``ns``) would change: a dry run
    showing only the namespaces that would change, each to keep or leave out."""
    chosen = [name for name in dict.fromkeys(ns) if name]
    planned = await restore.restore_for(
        visitor.session,
        backups=_backups(visitor),
        principal=visitor.principal,
        backup_id=backup_id,
        request=RestoreRequest(dry_run=True, namespaces=chosen or None),
    )
    detail = await service.get(
        visitor.session, backups=_backups(visitor), principal=visitor.principal, backup_id=backup_id
    )
    changing = [n for n in planned.namespaces if _changes(n)]
    namespaces = [{"report": n, "rows": restore_rows(n)} for n in changing]
    return page(
        visitor.request,
        "backup_restore.html",
        visitor,
        backup=detail,
        namespaces=namespaces,
        changes=bool(changing),
        unchanged=len(planned.namespaces) - len(changing),
        chosen=chosen,
    )


@router.post("/backups/{backup_id}/restore")
async def restore_backup(visitor: SignedIn, backup_id: BackupId) -> Response:
    """Restore the backup's checked namespaces: one new revision per namespace it changes."""
    form = await visitor.request.form()
    chosen = [str(name) for name in form.getlist("ns") if str(name)]
    if form.get("selecting") and not chosen:
        return redirect(
            visitor.request,
            f"/ui/admin/backups/{backup_id}/restore",
            flash="Nothing restored: check at least one namespace.",
        )
    done = await restore.restore_for(
        visitor.session,
        backups=_backups(visitor),
        principal=visitor.principal,
        backup_id=backup_id,
        request=RestoreRequest(namespaces=chosen or None),
    )
    written = [f"{n.name} (revision {n.revision})" for n in done.namespaces if n.revision]
    summary = ", ".join(written) if written else "nothing needed to change"
    return redirect(
        visitor.request, "/ui/admin/backups", flash=f"Restored backup {backup_id}: {summary}."
    )
