"""Change-request rules: who sees, submits, reviews and merges them.

A request is a draft its author adds to (each write to the protected namespace goes into it,
``konfig.changes.proposals``) until they submit it; it is then open for review. Approvers are
those the namespace's policies name (by default whoever may edit it), never the author unless
every policy allows self-approval. Once it has the approvals the policies ask, the author or an
approver merges it: one revision, under the namespace's lock, validated again, whose message
names the request, its author and its approvers. A key that changed in the namespace since it
was proposed refuses the merge (409, naming the keys); other changes since are kept (the
request is rebased). Every step is audited, and the opened, approved, rejected and merged ones
are webhook events (``change_request.*``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from konfig.audit import service as audit
from konfig.auth.principal import Principal
from konfig.changes import policies, repository, views
from konfig.changes.models import ChangeRequest, ChangeRequestEvent
from konfig.changes.policies import Rules
from konfig.changes.schemas import (
    PENDING,
    STATUSES,
    ChangeRequestRead,
    ChangeRequestSummary,
)
from konfig.configs.service import may_reveal
from konfig.db.base import utcnow
from konfig.db.outbox import listed_keys, record_event
from konfig.errors import Conflict, Forbidden, NotFound, ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.pagination import Page, by_time, paginate, time_of
from konfig.revisions.rows import EntryDraft
from konfig.revisions.writer import WritePolicy, commit_changes, current_entries, lock_namespace
from konfig.users import service as users
from konfig.users.models import Role

MAX_MESSAGE = 1000
UNPROTECTED = Rules(
    approvals_required=1, allow_self_approval=False, enforcement="", approvers=((),)
)


async def _load(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID, *, lock: bool = False
) -> tuple[ChangeRequest, Namespace]:
    """The request, when the caller may read its namespace (a draft: only its author)."""
    principal.require(Role.viewer)
    request = await repository.request(
        session, tenant_id=principal.tenant_id, request_id=request_id, lock=lock
    )
    missing = NotFound(f"no change request {request_id}")
    if request is None or (request.status == "draft" and request.author != principal.actor):
        raise missing
    spaces = await repository.namespaces_by_id(
        session, tenant_id=principal.tenant_id, ids=[request.namespace_id]
    )
    namespace = spaces.get(request.namespace_id)
    if namespace is None:
        raise missing
    namespaces.check_allowed(principal, namespace, "read")
    return request, namespace


async def _context(
    session: AsyncSession, principal: Principal, request: ChangeRequest, namespace: Namespace
) -> tuple[Rules | None, list[ChangeRequestEvent], bool, bool]:
    """The request's rules, its events, and whether the caller may approve it and merge it."""
    rules = await policies.rules(session, tenant_id=principal.tenant_id, namespace=namespace.name)
    events = await repository.events(
        session, tenant_id=principal.tenant_id, request_ids=[request.id]
    )
    approve = await _may_approve(session, principal, rules, namespace, request)
    merge = request.status == "approved" and (
        (principal.actor == request.author and principal.allows(namespace.name, "write"))
        or await _may_approve(session, principal, rules, namespace, request, self_ok=True)
    )
    return rules, events, approve, merge


async def _may_approve(
    session: AsyncSession,
    principal: Principal,
    rules: Rules | None,
    namespace: Namespace,
    request: ChangeRequest,
    *,
    self_ok: bool = False,
) -> bool:
    if principal.kind != "user":
        return False
    if rules is None:  # no policy protects it now: whoever may edit approves, as by default
        rules = UNPROTECTED
    person = await repository.user(session, tenant_id=principal.tenant_id, user_id=principal.id)
    author = "" if self_ok else request.author
    return policies.may_approve(principal, person, rules, namespace.name, author)


async def get(
    session: AsyncSession,
    *,
    principal: Principal,
    policy: WritePolicy,
    request_id: uuid.UUID,
    reveal: bool = False,
) -> ChangeRequestRead:
    reveal = may_reveal(principal, reveal)
    request, namespace = await _load(session, principal, request_id)
    if reveal:
        namespaces.check_allowed(principal, namespace, "secrets")
        secrets = [str(i["key"]) for i in request.changes if i.get("is_secret")]
        await audit.record_reveal(
            session, namespace=namespace.name, keys=secrets, via="change request"
        )
    rules, events, approve, merge = await _context(session, principal, request, namespace)
    return await views.read(
        session,
        principal=principal,
        keyring=policy.keyring,
        request=request,
        namespace=namespace,
        rules=rules,
        events=events,
        may_approve=approve and request.status == "open",
        may_merge=merge,
        reveal=reveal,
    )


async def list_page(
    session: AsyncSession,
    *,
    principal: Principal,
    namespace_id: uuid.UUID | None,
    status: str | None,
    mine: bool,
    waiting_for_me: bool,
    cursor: str | None,
    limit: int,
) -> Page[ChangeRequestSummary]:
    """Newest first; only requests on namespaces the caller may read, drafts only their own."""
    principal.require(Role.viewer)
    if status is not None and status not in STATUSES:
        raise ValidationFailed(
            f"status must be one of {', '.join(STATUSES)}", {"loc": ["query", "status"]}
        )
    statuses = [status] if status else list(STATUSES)
    if waiting_for_me:
        statuses = [s for s in statuses if s == "open"]
    found = await repository.policies(session, tenant_id=principal.tenant_id)
    person = await repository.user(session, tenant_id=principal.tenant_id, user_id=principal.id)

    async def visible(rows: Sequence[ChangeRequest]) -> list[ChangeRequest]:
        spaces = await repository.namespaces_by_id(
            session, tenant_id=principal.tenant_id, ids=[r.namespace_id for r in rows]
        )
        events = await repository.events(
            session, tenant_id=principal.tenant_id, request_ids=[r.id for r in rows]
        )
        kept = []
        for row in rows:
            space = spaces.get(row.namespace_id)
            if space is None or not principal.allows(space.name, "read"):
                continue
            if waiting_for_me:
                rules = policies.rules_for(found, space.name)
                done = views.approvers([e for e in events if e.change_request_id == row.id])
                if rules is None or principal.actor in done:
                    continue
                if not policies.may_approve(principal, person, rules, space.name, row.author):
                    continue
            kept.append(row)
        return kept

    async def fetch(after: Any, count: int) -> list[ChangeRequest]:
        kept: list[ChangeRequest] = []
        while len(kept) < count:
            rows = await repository.requests(
                session,
                tenant_id=principal.tenant_id,
                statuses=statuses,
                namespace_id=namespace_id,
                author=principal.actor if mine else None,
                visible_to_author=principal.actor,
                after=after,
                count=count,
            )
            kept += await visible(rows)
            if len(rows) < count:
                break
            after = (rows[-1].created_at, rows[-1].id)
        return kept[:count]

    rows, next_cursor = await paginate(cursor, limit, read=by_time, fetch=fetch, position=time_of)
    items = await views.summaries(session, principal=principal, requests=rows)
    return Page[ChangeRequestSummary](items=items, next_cursor=next_cursor)


async def _step(
    session: AsyncSession,
    principal: Principal,
    request: ChangeRequest,
    namespace: Namespace,
    kind: str,
    body: str = "",
    **summary: Any,
) -> None:
    await repository.add_event(
        session,
        ChangeRequestEvent(
            id=uuid.uuid4(),
            tenant_id=principal.tenant_id,
            change_request_id=request.id,
            actor=principal.actor,
            kind=kind,
            body=body,
            created_at=utcnow(),
        ),
    )
    request.updated_at = utcnow()
    await audit.record(
        session,
        action=f"change_request.{kind}",
        target_type="change_request",
        target=str(request.id),
        namespace=namespace.name,
        summary={"status": request.status, "keys": views.keys_of(request)[:200], **summary},
    )


async def _announce(
    session: AsyncSession,
    principal: Principal,
    request: ChangeRequest,
    namespace: Namespace,
    kind: str,
    **extra: Any,
) -> None:
    await record_event(
        session,
        tenant_id=principal.tenant_id,
        type=f"change_request.{kind}",
        namespace_id=namespace.id,
        namespace=namespace.name,
        data={
            "change_request_id": str(request.id),
            "namespace": namespace.name,
            "title": request.title,
            "author": request.author,
            "actor": principal.actor,
            "status": request.status,
            **listed_keys(views.keys_of(request)),
            **extra,
        },
    )


async def _answer(
    session: AsyncSession, principal: Principal, policy: WritePolicy, request: ChangeRequest
) -> ChangeRequestRead:
    return await get(session, principal=principal, policy=policy, request_id=request.id)


def _expect(request: ChangeRequest, *statuses: str, doing: str) -> None:
    if request.status not in statuses:
        raise Conflict(
            f"change request {request.id} is {request.status}: only a request that is "
            f"{' or '.join(statuses)} can be {doing}",
            {"status": request.status},
        )


async def submit(
    session: AsyncSession,
    *,
    principal: Principal,
    policy: WritePolicy,
    request_id: uuid.UUID,
    title: str | None,
) -> ChangeRequestRead:
    """The author hands their draft over for review."""
    request, namespace = await _load(session, principal, request_id, lock=True)
    if request.author != principal.actor:
        raise Forbidden("only the author of a change request may submit it")
    _expect(request, "draft", doing="submitted")
    if not request.changes:
        raise ValidationFailed("this change request changes nothing yet: nothing to submit")
    if title:
        request.title = title
    request.status = "open"
    request.submitted_at = utcnow()
    await _step(session, principal, request, namespace, "submit")
    await _announce(session, principal, request, namespace, "opened")
    return await _answer(session, principal, policy, request)


async def comment(
    session: AsyncSession,
    *,
    principal: Principal,
    policy: WritePolicy,
    request_id: uuid.UUID,
    body: str,
) -> ChangeRequestRead:
    request, namespace = await _load(session, principal, request_id, lock=True)
    principal.require_user()
    await _step(session, principal, request, namespace, "comment", body)
    return await _answer(session, principal, policy, request)


async def approve(
    session: AsyncSession,
    *,
    principal: Principal,
    policy: WritePolicy,
    request_id: uuid.UUID,
    comment: str | None,
) -> ChangeRequestRead:
    request, namespace = await _load(session, principal, request_id, lock=True)
    principal.require_user()
    _expect(request, "open", doing="approved")
    rules, events, allowed, _ = await _context(session, principal, request, namespace)
    if not allowed:
        raise Forbidden(_why_not(principal, request, rules), {"change_request_id": str(request.id)})
    if principal.actor in views.approvers(events):
        raise Conflict("you have approved this change request already")
    await _step(session, principal, request, namespace, "approve", comment or "")
    count = len(views.approvers(events)) + 1
    if rules is None or count >= rules.approvals_required:
        request.status = "approved"
        await _announce(session, principal, request, namespace, "approved", approvals=count)
    return await _answer(session, principal, policy, request)


def _why_not(principal: Principal, request: ChangeRequest, rules: Rules | None) -> str:
    if principal.actor == request.author and not (rules and rules.allow_self_approval):
        return "you wrote this change request: its namespace's policy asks someone else to approve"
    return "you are not among the approvers this namespace's protection policy names"


async def reject(
    session: AsyncSession,
    *,
    principal: Principal,
    policy: WritePolicy,
    request_id: uuid.UUID,
    comment: str | None,
) -> ChangeRequestRead:
    """An approver rejects the request, or its author withdraws it: it is closed for good."""
    request, namespace = await _load(session, principal, request_id, lock=True)
    principal.require_user()
    _expect(request, *PENDING, doing="rejected")
    rules, _, allowed, _ = await _context(session, principal, request, namespace)
    if not allowed and principal.actor != request.author:
        raise Forbidden(_why_not(principal, request, rules), {"change_request_id": str(request.id)})
    request.status = "rejected"
    await _step(session, principal, request, namespace, "reject", comment or "")
    await _announce(session, principal, request, namespace, "rejected")
    return await _answer(session, principal, policy, request)


async def merge(
    session: AsyncSession,
    *,
    principal: Principal,
    policy: WritePolicy,
    request_id: uuid.UUID,
) -> ChangeRequestRead:
    """Commit the approved change as one revision (409 naming the keys that moved on)."""
    request, namespace = await _load(session, principal, request_id, lock=True)
    _expect(request, "approved", doing="merged")
    rules, events, _, allowed = await _context(session, principal, request, namespace)
    if not allowed:
        raise Forbidden("only the author or an approver of this change request may merge it")
    done = views.approvers(events)
    if rules is not None and len(done) < rules.approvals_required:  # the policy asks more now
        raise Conflict(
            f"this change request has {len(done)} approval(s); its namespace's policy now asks "
            f"for {rules.approvals_required}",
            {"approvals": len(done), "approvals_required": rules.approvals_required},
        )
    namespace = await lock_namespace(
        session, tenant_id=principal.tenant_id, namespace_id=namespace.id
    )
    current = await current_entries(session, namespace, views.keys_of(request))
    conflicts = [i["key"] for i in request.changes if views.moved(i, current.get(i["key"]))]
    if conflicts:
        raise Conflict(
            f"{', '.join(conflicts)} changed in {namespace.name} since this change request was "
            "made: merging would overwrite that change. Reject it and propose again.",
            {"keys": conflicts},
        )
    upserts = [
        EntryDraft(
            item["key"],
            views.proposed_value(policy.keyring, namespace, item),
            item["value_type"],
            item.get("validation_schema"),
            item.get("description") or "",
            bool(item["is_secret"]),
        )
        for item in request.changes
        if item["action"] == "set"
    ]
    deletes = [item["key"] for item in request.changes if item["action"] == "delete"]
    names = await users.display_names(session, principal=principal, actors=[request.author, *done])
    trailer = (
        f" [change request {request.id} by {names.get(request.author, request.author)}; "
        f"approved by {', '.join(names.get(a, a) for a in done) or 'nobody'}]"
    )
    title = request.title or f"Change to {namespace.name}"
    message = title[: max(0, MAX_MESSAGE - len(trailer))] + trailer
    outcome = await commit_changes(
        session,
        policy=policy,
        tenant_id=namespace.tenant_id,
        namespace_id=namespace.id,
        actor=principal.actor,
        upserts=upserts,
        deletes=deletes,
        message=message[:MAX_MESSAGE],
        locked=namespace,
        current=current,
        principal=principal,
        approved=True,
    )
    request.status = "merged"
    request.merged_at = utcnow()
    request.merged_by = principal.actor
    request.merged_revision = outcome.revision
    await _step(
        session,
        principal,
        request,
        namespace,
        "merge",
        message,
        message=message,
        revision=outcome.revision,
        author=request.author,
        approved_by=[names.get(a, a) for a in done],
    )
    await _announce(
        session,
        principal,
        request,
        namespace,
        "merged",
        revision=outcome.revision,
        approved_by=done,
    )
    return await _answer(session, principal, policy, request)
