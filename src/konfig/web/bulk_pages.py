"""Bulk editing a namespace: several values in one form, a pasted or uploaded .env, YAML, JSON
or properties file, each reviewed as a diff and then applied as one revision; exports as files.

Every change goes through the import of ``konfig.revisions.documents`` (a dry run to review,
then the same body with the reviewed revision in ``If-Match``), so the rules, templates and
references of every write path hold here too.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from konfig.configs.schemas import MASK
from konfig.errors import Forbidden, KonfigError, PreconditionFailed
from konfig.revisions import documents, exports
from konfig.revisions.formats import Format
from konfig.revisions.service import revision_etag
from konfig.web.forms import text
from konfig.web.history_pages import diff_rows, namespace_context, namespace_of
from konfig.web.namespace_pages import policy_of
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)

FORMATS: tuple[Format, ...] = ("env", "yaml", "json", "properties")
MEDIA = {
    "env": "text/plain",
    "properties": "text/plain",
    "yaml": "application/yaml",
    "json": "application/json",
}
MAX_UPLOAD = 1024 * 1024


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _shown(entry: dict[str, Any]) -> str:
    """How the form shows an entry's value: secrets as the mask, which keeps them."""
    return MASK if entry["is_secret"] else _as_text(entry["value"])


async def _entries(visitor: Visitor, namespace_id: uuid.UUID) -> list[dict[str, Any]]:
    found, _ = await exports.document(
        visitor.session,
        policy=policy_of(visitor),
        principal=visitor.principal,
        namespace_id=namespace_id,
        reveal=False,
    )
    return found


async def bulk_page(
    visitor: Visitor,
    namespace_id: uuid.UUID,
    *,
    status_code: int = 200,
    problem: str = "",
    pasted: str = "",
    kind: str = "env",
    mode: str = "merge",
) -> Response:
    namespace = await namespace_of(visitor, namespace_id)
    rows = [
        {
            "key": entry["key"],
            "text": _shown(entry),
            "value_type": entry["value_type"],
            "secret": entry["is_secret"],
        }
        for entry in await _entries(visitor, namespace_id)
        if entry["value_type"] != "flag"
    ]
    return page(
        visitor.request,
        "bulk.html",
        visitor,
        status_code=status_code,
        rows=rows,
        problem=problem,
        pasted=pasted,
        kind=kind,
        mode=mode,
        formats=FORMATS,
        **namespace_context(namespace),
    )


@router.get("/namespaces/{namespace_id}/bulk")
async def bulk_view(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Several values in one form, or a pasted or uploaded file: reviewed, then one revision."""
    return await bulk_page(visitor, namespace_id)


def _typed(text_value: str, value_type: str) -> Any:
    """A form field's text as the entry's type reads it (JSON for numbers, booleans, json)."""
    if value_type in ("string", "select"):
        return text_value
    try:
        return orjson.loads(text_value)
    except orjson.JSONDecodeError:
        return text_value  # the type's check names the problem


async def _body_of(visitor: Visitor, form: Any, namespace_id: uuid.UUID) -> tuple[bytes, str, str]:
    """The import body, its format and mode: from the edited values, a paste or an upload."""
    source = text(form, "source")
    if source == "values":
        entries = []
        for entry in await _entries(visitor, namespace_id):
            field = form.get(f"value:{entry['key']}")
            if isinstance(field, str) and field != _shown(entry):
                entries.append({"key": entry["key"], "value": _typed(field, entry["value_type"])})
        return orjson.dumps({"entries": entries}), "json", "merge"
    kind = text(form, "format") or "env"
    mode = "replace" if text(form, "mode") == "replace" else "merge"
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        body = await upload.read(MAX_UPLOAD + 1)
        return body[: MAX_UPLOAD + 1], kind, mode
    return text(form, "pasted").encode(), kind, mode


async def _failed(visitor: Visitor, exc: KonfigError) -> None:
    if isinstance(exc, Forbidden):
        await visitor.refused(exc)
    else:
        await visitor.restart()


@router.post("/namespaces/{namespace_id}/bulk/review")
async def bulk_review(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """The diff the change would make, nothing written: to confirm."""
    form = await visitor.request.form()
    body, kind, mode = await _body_of(visitor, form, namespace_id)
    pasted = body.decode("utf-8", "replace") if text(form, "source") != "values" else ""
    if len(body) > MAX_UPLOAD:
        return await bulk_page(
            visitor, namespace_id, status_code=413, problem="The file is larger than 1 MB."
        )
    try:
        planned = await documents.import_file(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            namespace_id=namespace_id,
            body=body,
            content_type=MEDIA.get(kind, "text/plain"),
            kind=kind if kind in FORMATS else None,
            mode="replace" if mode == "replace" else "merge",
            dry_run=True,
            if_match=None,
            message=None,
            reveal=False,
        )
    except KonfigError as exc:
        await _failed(visitor, exc)
        return await bulk_page(
            visitor,
            namespace_id,
            status_code=exc.status_code,
            problem=exc.message,
            pasted=pasted,
            kind=kind,
            mode=mode,
        )
    namespace = await namespace_of(visitor, namespace_id)
    return page(
        visitor.request,
        "bulk_review.html",
        visitor,
        rows=diff_rows(planned.diff),
        body=body.decode("utf-8", "replace"),
        kind=kind,
        mode=mode,
        expected=planned.revision,
        **namespace_context(namespace),
    )


@router.post("/namespaces/{namespace_id}/bulk/apply")
async def bulk_apply(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Apply as reviewed, as one revision: refused if the namespace changed since."""
    form = await visitor.request.form()
    kind, mode, expected = text(form, "format"), text(form, "mode"), text(form, "expected")
    body = text(form, "body").encode()
    try:
        done = await documents.import_file(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            namespace_id=namespace_id,
            body=body,
            content_type=MEDIA.get(kind, "text/plain"),
            kind=kind if kind in FORMATS else None,
            mode="replace" if mode == "replace" else "merge",
            dry_run=False,
            if_match=revision_etag(int(expected)) if expected.isdigit() else None,
            message=text(form, "message").strip()[:1000] or "bulk edit",
            reveal=False,
        )
    except PreconditionFailed:
        await visitor.restart()
        return await bulk_page(
            visitor,
            namespace_id,
            status_code=412,
            problem="Someone changed this namespace while you were reviewing, so nothing was "
            "changed: review the change again.",
            pasted=body.decode("utf-8", "replace") if kind != "json" else "",
            kind=kind,
            mode=mode,
        )
    except KonfigError as exc:
        await _failed(visitor, exc)
        return await bulk_page(
            visitor, namespace_id, status_code=exc.status_code, problem=exc.message
        )
    flash = (
        f"Applied: the namespace is now at revision {done.revision}."
        if done.committed
        else "Nothing to change: the namespace already holds these values."
    )
    return redirect(visitor.request, f"/ui/namespaces/{namespace_id}", flash=flash)


@router.get("/namespaces/{namespace_id}/export")
async def export_file(
    visitor: SignedIn, namespace_id: uuid.UUID, format: str = Query("yaml", max_length=16)
) -> Response:
    """The namespace as a file to download (secrets masked; importing the mask keeps them)."""
    kind: Format = format if format in FORMATS else "yaml"
    namespace = await namespace_of(visitor, namespace_id)
    body, revision = await exports.export(
        visitor.session,
        policy=policy_of(visitor),
        principal=visitor.principal,
        namespace_id=namespace_id,
        kind=kind,
        reveal=False,
        revision=None,
    )
    extension = {"env": "env", "properties": "properties", "json": "json", "yaml": "yaml"}[kind]
    filename = f"{namespace.name.replace('/', '_')}-r{revision}.{extension}"
    return Response(
        body,
        media_type=MEDIA[kind],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
