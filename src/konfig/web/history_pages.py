"""History of a namespace: its revisions, each entry's versions, diffs, and rollbacks that show
their diff before anything changes. They front ``konfig.revisions.service`` and
``konfig.revisions.rollbacks``."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response

from konfig.configs import service as configs
from konfig.errors import NotFound, PreconditionFailed, ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.namespaces.schemas import NamespaceRead
from konfig.pagination import cursor_at
from konfig.revisions import rollbacks
from konfig.revisions import service as revisions
from konfig.revisions.schemas import DiffRead, EntryRollback, NamespaceRollback
from konfig.revisions.writer import Proposed
from konfig.users.models import Role
from konfig.web.change_pages import proposed
from konfig.web.forms import text
from konfig.web.namespace_pages import names_of, policy_of
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)

PER_PAGE = 20
KEYS_SHOWN = 6  # keys a revision shows on its line in the history; the rest are folded
Cursor = Annotated[str | None, Query(max_length=500)]


async def namespace_of(visitor: Visitor, namespace_id: uuid.UUID) -> NamespaceRead:
    found = await namespaces.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id
    )
    return await namespaces.render_one(visitor.session, namespace=found)


def namespace_context(namespace: NamespaceRead) -> dict[str, Any]:
    return {"namespace": namespace, "segments": namespace.name.split("/")}


def changed_paths(old: Any, new: Any, path: str = "", limit: int = 20) -> list[str]:
    """Where two JSON values differ (``db.pool.size``, ``hosts[2]``), at most ``limit``: what a
    JSON diff highlights rather than two whole documents."""
    found: list[str] = []

    def walk(a: Any, b: Any, at: str) -> None:
        if len(found) >= limit or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                walk(a.get(name, _ABSENT), b.get(name, _ABSENT), f"{at}.{name}" if at else name)
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{at}[{index}]")
        else:
            found.append(at or "(the whole value)")

    walk(old, new, path)
    return found


_ABSENT = object()


def diff_rows(diff: DiffRead) -> list[dict[str, Any]]:
    """One row per key in key order, each with its kind: added, removed or changed (and, for a
    changed JSON value, the paths that changed)."""
    rows = []
    kinds = (("added", diff.added), ("removed", diff.removed), ("changed", diff.changed))
    for kind, items in kinds:
        for item in items:
            paths: list[str] = []
            if (
                kind == "changed"
                and item.old is not None
                and item.new is not None
                and item.new.value_type in ("json", "flag")
                and "value" in item.fields
                and not item.new.is_secret
            ):
                paths = changed_paths(item.old.value, item.new.value)
            rows.append({"kind": kind, "item": item, "paths": paths})
    return sorted(rows, key=lambda row: row["item"].key)


def parse_revision(raw: str | None, latest: int, name: str) -> int:
    if raw is None or not raw.strip().isdigit():
        raise ValidationFailed(f"{name}: enter a revision number between 0 and {latest}")
    revision = int(raw.strip())
    if revision > latest:
        raise ValidationFailed(f"{name}: the latest revision is {latest}; pick one up to it")
    return revision


# -- the namespace's revisions --------------------------------------------------------------


def _day(raw: str, field: str, errors: dict[str, str]) -> datetime | None:
    """A ``YYYY-MM-DD`` filter as the start of that day (UTC)."""
    if not raw:
        return None
    try:
        return datetime.combine(date.fromisoformat(raw), time(), UTC)
    except ValueError:
        errors[field] = "Enter a date as YYYY-MM-DD."
        return None


@router.get("/namespaces/{namespace_id}/history")
async def namespace_history(
    visitor: SignedIn,
    namespace_id: uuid.UUID,
    cursor: Cursor = None,
    key: str = Query("", max_length=255),
    author: str = Query("", max_length=320),
    since: str = Query("", max_length=10),
    until: str = Query("", max_length=10),
) -> Response:
    """The namespace's revisions, newest first: who, when, why, and the keys each touched;
    filtered by a key, an author (email) and a date range."""
    namespace = await namespace_of(visitor, namespace_id)
    errors: dict[str, str] = {}
    start, end = _day(since, "since", errors), _day(until, "until", errors)
    filters = {"key": key.strip(), "author": author.strip(), "since": since, "until": until}
    listed = await revisions.revisions(
        visitor.session,
        principal=visitor.principal,
        namespace_id=namespace_id,
        cursor=cursor,
        limit=PER_PAGE,
        key=filters["key"] or None,
        author=filters["author"] or None,
        since=start,
        until=end + timedelta(days=1) if end is not None else None,  # through that whole day
    )
    return page(
        visitor.request,
        "history.html",
        visitor,
        status_code=422 if errors else 200,
        keys_shown=KEYS_SHOWN,
        newer_cursor=_newer(listed.items[0].revision if listed.items else None, namespace, filters),
        filters=filters,
        filtering=any(filters.values()),
        filter_query=urlencode({k: v for k, v in filters.items() if v}),
        filter_errors=errors,
        revisions=listed.items,
        next_cursor=listed.next_cursor,
        paged=cursor is not None,
        people=await names_of(visitor, [r.actor for r in listed.items]),
        compare={
            "from": str(max(namespace.revision - 1, 0)),
            "to": str(namespace.revision),
        },
        **namespace_context(namespace),
    )


def _newer(first: int | None, namespace: NamespaceRead, filters: dict[str, str]) -> str | None:
    """The cursor of the page of newer revisions than ``first`` (the newest shown), when it is
    not the first page: revisions are numbered without gaps, so unfiltered pages are known."""
    if first is None or any(filters.values()) or first + PER_PAGE >= namespace.revision:
        return None  # the first page, reached by "Newest revisions"
    return cursor_at([first + PER_PAGE + 1])


@router.get("/namespaces/{namespace_id}/diff")
async def revision_diff(
    visitor: SignedIn,
    namespace_id: uuid.UUID,
    from_revision: str | None = Query(None, alias="from", max_length=20),
    to_revision: str | None = Query(None, alias="to", max_length=20),
) -> Response:
    """Added, removed and changed keys between any two revisions (secrets masked)."""
    namespace = await namespace_of(visitor, namespace_id)
    latest = namespace.revision
    compare = {
        "from": from_revision if from_revision is not None else str(max(latest - 1, 0)),
        "to": to_revision if to_revision is not None else str(latest),
    }
    errors: dict[str, str] = {}
    diff = None
    try:
        low = parse_revision(compare["from"], latest, "from")
    except ValidationFailed as exc:
        errors["from"] = exc.message.removeprefix("from: ")
    try:
        high = parse_revision(compare["to"], latest, "to")
    except ValidationFailed as exc:
        errors["to"] = exc.message.removeprefix("to: ")
    if not errors:
        diff = await revisions.diff(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            namespace_id=namespace_id,
            from_revision=low,
            to_revision=high,
            reveal=False,
        )
    return page(
        visitor.request,
        "diff.html",
        visitor,
        status_code=422 if errors else 200,
        compare=compare,
        errors=errors,
        diff=diff,
        rows=diff_rows(diff) if diff else [],
        notes=await revisions.change_notes(
            visitor.session,
            principal=visitor.principal,
            namespace_id=namespace_id,
            numbers=list(range(low + 1, high + 1))[:50] if diff else [],
        ),
        **namespace_context(namespace),
    )


# -- rolling the namespace back -------------------------------------------------------------


async def rollback_page(
    visitor: Visitor,
    namespace_id: uuid.UUID,
    raw_revision: str | None,
    *,
    status_code: int = 200,
    problem: str = "",
    message: str = "",
) -> Response:
    visitor.principal.require_somewhere(Role.editor)
    namespace = await namespace_of(visitor, namespace_id)
    try:
        target = parse_revision(raw_revision, namespace.revision, "revision")
    except ValidationFailed as exc:
        raise NotFound(
            f"{namespace.name} has no such revision to roll back to "
            f"({exc.message.removeprefix('revision: ')})"
        ) from exc
    planned = await rollbacks.rollback(
        visitor.session,
        policy=policy_of(visitor),
        principal=visitor.principal,
        namespace_id=namespace_id,
        payload=NamespaceRollback(revision=target),
        message=None,
        if_match=None,
        dry_run=True,
        reveal=False,
    )
    return page(
        visitor.request,
        "rollback.html",
        visitor,
        status_code=status_code,
        target=target,
        rows=diff_rows(planned.diff),
        problem=problem,
        message=message,
        **namespace_context(namespace),
    )


@router.get("/namespaces/{namespace_id}/rollback")
async def rollback_confirm(
    visitor: SignedIn,
    namespace_id: uuid.UUID,
    revision: str | None = Query(None, max_length=20),
) -> Response:
    """What rolling back to a revision would change (current → then), to confirm (editors)."""
    return await rollback_page(visitor, namespace_id, revision)


@router.post("/namespaces/{namespace_id}/rollback")
async def rollback_namespace(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Roll back as reviewed: refused if the namespace changed since the diff was shown."""
    form = await visitor.request.form()
    raw, expected, message = text(form, "revision"), text(form, "expected"), text(form, "message")
    if not raw.isdigit() or not expected.isdigit():
        return await rollback_page(visitor, namespace_id, raw or None)
    try:
        done = await rollbacks.rollback(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            namespace_id=namespace_id,
            payload=NamespaceRollback(revision=int(raw), message=message.strip()[:1000] or None),
            message=None,
            if_match=revisions.revision_etag(int(expected)),
            dry_run=False,
            reveal=False,
        )
    except PreconditionFailed:
        await visitor.restart()
        return await rollback_page(
            visitor,
            namespace_id,
            raw,
            status_code=412,
            problem="Someone changed this namespace while you were reviewing the rollback, so "
            "nothing was changed. Below is what rolling back would change now: review it and "
            "confirm again.",
            message=message,
        )
    if done.change_request is not None:
        return proposed(visitor, done.change_request)
    if not done.committed:
        flash = f"Nothing to do: the namespace already matches revision {raw}."
    else:
        flash = f"Rolled back to revision {raw}: the namespace is now at revision {done.revision}."
    return redirect(visitor.request, f"/ui/namespaces/{namespace_id}/history", flash=flash)


# -- one entry's versions -------------------------------------------------------------------


@router.get("/namespaces/{namespace_id}/entries/{key}/history")
async def entry_history(
    visitor: SignedIn, namespace_id: uuid.UUID, key: str, cursor: Cursor = None
) -> Response:
    """Every version of one entry, newest first, with a way to restore an earlier one."""
    namespace = await namespace_of(visitor, namespace_id)
    listed = await revisions.history(
        visitor.session,
        policy=policy_of(visitor),
        principal=visitor.principal,
        namespace_id=namespace_id,
        key=key,
        reveal=False,
        cursor=cursor,
        limit=PER_PAGE,
    )
    current = await _current_version(visitor, namespace_id, key)
    return page(
        visitor.request,
        "entry_history.html",
        visitor,
        key=key,
        versions=listed.items,
        current=current,
        next_cursor=listed.next_cursor,
        paged=cursor is not None,
        people=await names_of(visitor, [v.actor for v in listed.items]),
        notes=await revisions.change_notes(
            visitor.session,
            principal=visitor.principal,
            namespace_id=namespace_id,
            numbers=[v.revision for v in listed.items],
        ),
        **namespace_context(namespace),
    )


async def _current_version(visitor: Visitor, namespace_id: uuid.UUID, key: str) -> int | None:
    """The live version of ``key``, or None when it is deleted now."""
    try:
        entry = await configs.get(
            visitor.session, principal=visitor.principal, namespace_id=namespace_id, key=key
        )
    except NotFound:
        return None
    return entry.version


@router.post("/namespaces/{namespace_id}/entries/{key}/rollback")
async def restore_version(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """Restore an earlier version of an entry as its newest one (editors)."""
    form = await visitor.request.form()
    version, expected = text(form, "version"), text(form, "current")
    back = f"/ui/namespaces/{namespace_id}/entries/{key}/history"
    if not version.isdigit() or int(version) < 1:
        return redirect(visitor.request, back, flash="Choose a version to restore.")
    try:
        restored = await rollbacks.rollback_entry(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            namespace_id=namespace_id,
            key=key,
            payload=EntryRollback(version=int(version)),
            message=None,
            if_match=configs.etag(int(expected)) if expected.isdigit() else None,
        )
    except Proposed as done:
        return proposed(visitor, done.proposal)
    except PreconditionFailed:
        await visitor.restart()
        return redirect(
            visitor.request,
            back,
            flash=f"{key} changed while you were looking at its history, so nothing was "
            "restored. Check its newest version below and restore again if you still want to.",
        )
    return redirect(
        visitor.request,
        back,
        flash=f"Restored version {version} of {key} as version {restored.version} "
        f"(revision {restored.revision}).",
    )
