"""Change requests in the UI: the inbox (waiting for my review, mine, all open), a request's
page (its diff, its conversation, submit / approve / reject / merge), and the protection
policies page for admins. A write from any page to a protected namespace lands here too
(``proposed``): the page of the request the change went into."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.audit.context import audit_context, current
from konfig.changes import policies, service
from konfig.changes.proposals import BYPASS_HEADER
from konfig.changes.schemas import Approver, ChangeRequestSummary, PolicyCreate
from konfig.errors import Conflict, Forbidden, NotFound, ValidationFailed
from konfig.users.models import Role
from konfig.web.forms import text
from konfig.web.namespace_pages import policy_of
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)
INBOX = "/ui/change-requests"
POLICIES = "/ui/admin/protection"
VIEWS = {
    "waiting": "Waiting for my review",
    "mine": "Mine",
    "open": "All open",
}


def proposed(visitor: Visitor, proposal: ChangeRequestSummary) -> Response:
    """Where a page's write to a protected namespace goes: the change request it went into."""
    return redirect(
        visitor.request,
        f"{INBOX}/{proposal.id}",
        flash=f"{proposal.namespace} is protected: your change went into this change request "
        f"({', '.join(proposal.keys)}). Submit it for review when it is complete.",
    )


@contextmanager
def bypassing(reason: str) -> Iterator[None]:
    """A form's bypass reason, for the write in the block, as the API's header carries it
    (``konfig.changes.proposals`` reads it there; an empty one is no bypass at all)."""
    if not reason.strip():
        yield
        return
    now = current()
    sent = (BYPASS_HEADER.lower().encode(), reason.strip().encode())
    token = audit_context.set(now._replace(headers=[sent, *now.headers]))
    try:
        yield
    finally:
        audit_context.reset(token)


@router.get("/change-requests")
async def inbox(visitor: SignedIn, view: str = "waiting", namespace: str = "") -> Response:
    """Change requests: waiting for my review, mine, or all open ones (of a namespace)."""
    view = view if view in VIEWS else "waiting"
    namespace_id = None
    try:
        namespace_id = uuid.UUID(namespace) if namespace else None
    except ValueError:
        namespace_id = None
    found = await service.list_page(
        visitor.session,
        principal=visitor.principal,
        namespace_id=namespace_id,
        status="open" if view == "open" else None,
        mine=view == "mine",
        waiting_for_me=view == "waiting",
        cursor=None,
        limit=100,
    )
    return page(
        visitor.request,
        "change_requests.html",
        visitor,
        requests=found.items,
        view=view,
        views=VIEWS,
        namespace=namespace if namespace_id else "",
    )


@router.get("/change-requests/{request_id}")
async def request_page(visitor: SignedIn, request_id: uuid.UUID, reveal: bool = False) -> Response:
    """One change request: its diff (secrets masked unless revealed) and conversation."""
    request = await service.get(
        visitor.session,
        principal=visitor.principal,
        policy=policy_of(visitor),
        request_id=request_id,
        reveal=reveal,
    )
    return page(
        visitor.request,
        "change_request.html",
        visitor,
        cr=request,
        is_author=request.author == visitor.principal.actor,
        may_reveal=visitor.principal.allows(request.namespace, "secrets"),
        revealed=reveal,
    )


@router.post("/change-requests/{request_id}/{action}")
async def act(visitor: SignedIn, request_id: uuid.UUID, action: str) -> Response:
    """Submit, approve, reject, merge or comment, from the request's page."""
    form = await visitor.request.form()
    said = text(form, "comment").strip() or None
    here = f"{INBOX}/{request_id}"
    session, principal, policy = visitor.session, visitor.principal, policy_of(visitor)
    try:
        if action == "submit":
            title = text(form, "title").strip() or None
            await service.submit(
                session, principal=principal, policy=policy, request_id=request_id, title=title
            )
            flash = "Submitted for review."
        elif action == "approve":
            done = await service.approve(
                session, principal=principal, policy=policy, request_id=request_id, comment=said
            )
            flash = f"Approved ({done.approvals}/{done.approvals_required})."
        elif action == "reject":
            await service.reject(
                session, principal=principal, policy=policy, request_id=request_id, comment=said
            )
            flash = "Rejected: the change request is closed."
        elif action == "merge":
            done = await service.merge(
                session, principal=principal, policy=policy, request_id=request_id
            )
            flash = f"Merged into {done.namespace} as revision {done.merged_revision}."
        elif action == "comment" and said is not None:
            await service.comment(
                session, principal=principal, policy=policy, request_id=request_id, body=said
            )
            flash = "Comment added."
        elif action == "comment":
            return redirect(visitor.request, here, flash="Write a comment first.")
        else:
            raise NotFound(f"no action {action} on change requests")
    except (Forbidden, Conflict, ValidationFailed) as exc:
        if isinstance(exc, Forbidden):
            await visitor.refused(exc)
        else:
            await visitor.restart()
        return redirect(visitor.request, here, flash=f"Not done: {exc.message}")
    return redirect(visitor.request, here, flash=flash)


@router.get("/admin/protection")
async def protection_page(visitor: SignedIn) -> Response:
    """Protection policies (admins)."""
    return await _protection_page(visitor)


async def _protection_page(
    visitor: Visitor,
    *,
    status_code: int = 200,
    create: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    visitor.principal.require(Role.admin)
    return page(
        visitor.request,
        "protection.html",
        visitor,
        status_code=status_code,
        policies=await policies.list_policies(visitor.session, principal=visitor.principal),
        create=create or {"namespaces": "*/production", "approvals_required": "1"},
        errors=errors or {},
    )


def _approvers(raw: str) -> list[Approver]:
    """``role:admin, group:sre`` as approvers."""
    found: list[Approver] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        kind, _, name = part.partition(":")
        if kind not in ("role", "group") or not name.strip():
            raise ValueError(f"{part!r}: write role:NAME or group:NAME")
        found.append(Approver.model_validate({kind: name.strip()}))
    return found


@router.post("/admin/protection")
async def create_policy(visitor: SignedIn) -> Response:
    """Protect the namespaces a pattern matches."""
    visitor.principal.require(Role.admin)
    form = await visitor.request.form()
    fields = {
        name: text(form, name).strip()
        for name in ("namespaces", "approvals_required", "approvers", "enforcement")
    }
    errors: dict[str, str] = {}
    try:
        payload = PolicyCreate(
            namespaces=fields["namespaces"],
            approvals_required=int(fields["approvals_required"] or "1"),
            approvers=_approvers(fields["approvers"]),
            allow_self_approval=text(form, "allow_self_approval") == "1",
            enforcement="soft" if fields["enforcement"] == "soft" else "hard",
        )
        await policies.create(visitor.session, principal=visitor.principal, payload=payload)
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "namespaces"
            errors.setdefault(where, str(error["msg"]).removeprefix("Value error, "))
    except ValueError as exc:
        errors["approvers" if "role:" in str(exc) else "approvals_required"] = str(exc)
    except ValidationFailed as exc:
        errors["approvers"] = exc.message
    if errors:
        await visitor.restart()
        return await _protection_page(visitor, status_code=422, create=fields, errors=errors)
    return redirect(
        visitor.request,
        POLICIES,
        flash=f"Protected {fields['namespaces']}: changes there now go through change requests.",
    )


@router.post("/admin/protection/{policy_id}/delete")
async def delete_policy(visitor: SignedIn, policy_id: uuid.UUID) -> Response:
    """Remove a protection policy."""
    await policies.delete(visitor.session, principal=visitor.principal, policy_id=policy_id)
    return redirect(visitor.request, POLICIES, flash="Removed the protection policy.")
