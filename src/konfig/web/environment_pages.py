"""Environments side by side: the comparison grid, and copying checked keys from one
environment to another in one reviewed step (review the diff, then apply as one revision)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.environments import compare as comparison
from konfig.environments.schemas import ComparisonRead, CopyRequest
from konfig.errors import Forbidden, KonfigError, PreconditionFailed
from konfig.web.forms import text
from konfig.web.history_pages import diff_rows
from konfig.web.namespace_pages import list_namespaces, policy_of
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)

SLOTS = 4  # environment pickers on the form; the API compares up to ten


def compare_url(names: list[str], *, resolved: bool = False, differences: bool = False) -> str:
    params: list[tuple[str, str]] = [("ns", name) for name in names]
    if resolved:
        params.append(("resolved", "1"))
    if differences:
        params.append(("differences", "1"))
    return "/ui/compare?" + urlencode(params)


async def compare_page(
    visitor: Visitor,
    names: list[str],
    *,
    resolved: bool,
    differences: bool,
    status_code: int = 200,
    problem: str = "",
    checked: list[str] | None = None,
) -> Response:
    found, _ = await list_namespaces(visitor)
    readable = [n.name for n in found if visitor.principal.allows(n.name, "read")]
    result: ComparisonRead | None = None
    if len(names) >= 2:  # the grid stays beside a refused copy's reason
        try:
            result = await comparison.compare(
                visitor.session,
                policy=policy_of(visitor),
                principal=visitor.principal,
                names=comparison.parse_names(",".join(names)),
                resolved=resolved,
                only_differences=differences,
            )
        except KonfigError as exc:
            await _failed(visitor, exc)
            problem, status_code = exc.message, exc.status_code
    elif len(names) == 1:
        problem, status_code = "Pick at least two environments to compare.", 422
    writable = [n for n in names if visitor.principal.allows(n, "write")]
    return page(
        visitor.request,
        "compare.html",
        visitor,
        status_code=status_code,
        names=names,
        slots=max(SLOTS, len(names)),
        readable=readable,
        resolved=resolved,
        differences=differences,
        result=result,
        problem=problem,
        writable=writable,
        checked=set(checked or ()),
    )


@router.get("/compare")
async def compare_view(
    visitor: SignedIn,
    ns: Annotated[list[str], Query(max_length=comparison.MAX_COMPARED * 2)] = [],  # noqa: B006
    resolved: str = "",
    differences: str = "",
) -> Response:
    """Environments side by side: which keys are the same, different or missing."""
    names = list(dict.fromkeys(name.strip() for name in ns if name.strip()))
    return await compare_page(
        visitor, names, resolved=resolved == "1", differences=differences == "1"
    )


def _copy_request(form: Any) -> tuple[CopyRequest | None, list[str], str]:
    keys = [str(k) for k in form.getlist("key")]
    names = [str(n) for n in form.getlist("ns")]
    source, target = text(form, "source"), text(form, "target")
    if not keys:
        return None, names, "Check the keys to copy first."
    if not source or not target or source == target:
        return None, names, "Pick the environment to copy from and a different one to copy to."
    expected = text(form, "expected")
    message = text(form, "message").strip()[:1000] or None
    try:
        request = CopyRequest(
            source=source,
            target=target,
            keys=keys,
            message=message,
            expected_revision=int(expected) if expected.isdigit() else None,
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return None, names, f"The copy cannot be made: {where}: {first['msg']}."
    return request, names, ""


async def _failed(visitor: Visitor, exc: KonfigError) -> None:
    """Roll back; a refusal is audited as the API's 403s are."""
    if isinstance(exc, Forbidden):
        await visitor.refused(exc)
    else:
        await visitor.restart()


@router.post("/compare/copy")
async def copy_review(visitor: SignedIn) -> Response:
    """What copying the checked keys would change in the target: to review, then apply."""
    form = await visitor.request.form()
    request, names, problem = _copy_request(form)
    resolved, differences = text(form, "resolved") == "1", text(form, "differences") == "1"
    if request is None:
        return await compare_page(
            visitor,
            names,
            resolved=resolved,
            differences=differences,
            status_code=422,
            problem=problem,
            checked=[str(k) for k in form.getlist("key")],
        )
    return await _review(visitor, request, names, resolved=resolved, differences=differences)


async def _review(
    visitor: Visitor,
    request: CopyRequest,
    names: list[str],
    *,
    resolved: bool,
    differences: bool,
    status_code: int = 200,
    problem: str = "",
) -> Response:
    back = compare_url(names, resolved=resolved, differences=differences)
    try:
        planned = await comparison.copy(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            request=request.model_copy(update={"expected_revision": None}),
            dry_run=True,
        )
    except KonfigError as exc:
        await _failed(visitor, exc)
        return await compare_page(
            visitor,
            names,
            resolved=resolved,
            differences=differences,
            status_code=exc.status_code,
            problem=exc.message,
            checked=request.keys,
        )
    return page(
        visitor.request,
        "compare_copy.html",
        visitor,
        status_code=status_code,
        copy=request,
        rows=diff_rows(planned.diff),
        revision=planned.revision,
        names=names,
        resolved=resolved,
        differences=differences,
        back=back,
        problem=problem,
    )


@router.post("/compare/copy/apply")
async def copy_apply(visitor: SignedIn) -> Response:
    """Copy as reviewed, as one revision: refused if the target changed since the review."""
    form = await visitor.request.form()
    request, names, problem = _copy_request(form)
    resolved, differences = text(form, "resolved") == "1", text(form, "differences") == "1"
    back = compare_url(names, resolved=resolved, differences=differences)
    if request is None:
        return redirect(visitor.request, back, flash=problem)
    try:
        done = await comparison.copy(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            request=request,
            dry_run=False,
        )
    except PreconditionFailed:
        await visitor.restart()
        return await _review(
            visitor,
            request,
            names,
            resolved=resolved,
            differences=differences,
            status_code=412,
            problem=f"Someone changed {request.target} while you were reviewing the copy, so "
            "nothing was changed. Below is what copying would change now: review it and "
            "apply again.",
        )
    except KonfigError as exc:
        await _failed(visitor, exc)
        return await compare_page(
            visitor,
            names,
            resolved=resolved,
            differences=differences,
            status_code=exc.status_code,
            problem=exc.message,
            checked=request.keys,
        )
    count = len(request.keys)
    what = f"{count} key{'s' if count != 1 else ''}"
    if done.committed:
        flash = (
            f"Copied {what} from {request.source} to {request.target}: it is now at revision "
            f"{done.revision}."
        )
    else:
        flash = f"Nothing to copy: {request.target} already holds those values."
    return redirect(visitor.request, back, flash=flash)
