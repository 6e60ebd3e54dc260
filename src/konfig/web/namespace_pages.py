"""The dashboard (namespaces as a tree), a namespace's page, its entries and its live stream."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from konfig.audit import service as audit
from konfig.configs import service as configs
from konfig.configs.schemas import ConfigRead
from konfig.environments import search, templates
from konfig.environments.schemas import SearchRead
from konfig.errors import Conflict, ValidationFailed
from konfig.namespaces import service as namespaces
from konfig.namespaces.models import Namespace
from konfig.namespaces.schemas import NAME_RULES, NamespaceCreate, NamespaceRead, NamespaceUpdate
from konfig.revisions.writer import WritePolicy
from konfig.state import state_of
from konfig.users import service as users
from konfig.web.forms import EntryForm, text
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)

KEY_HITS = 100  # keys found by the search box
MAX_LISTED = 2000  # namespaces on the dashboard, entries on a namespace page
_PAGE = 200


@dataclass
class TreeNode:
    """One segment of a namespace path; ``namespace`` is set when that path is a namespace."""

    segment: str
    path: str
    namespace: NamespaceRead | None = None
    children: list[TreeNode] = field(default_factory=list)


def build_tree(found: list[NamespaceRead]) -> list[TreeNode]:
    """``payments`` > ``production``: each path segment a node, whether or not it holds entries."""
    roots: list[TreeNode] = []
    index: dict[str, TreeNode] = {}
    for namespace in sorted(found, key=lambda n: n.name):
        siblings, path = roots, ""
        for segment in namespace.name.split("/"):
            path = f"{path}/{segment}" if path else segment
            node = index.get(path)
            if node is None:
                node = index[path] = TreeNode(segment, path)
                siblings.append(node)
            siblings = node.children
        index[namespace.name].namespace = namespace
    return roots


def split_names(raw: str) -> list[str]:
    return [name for name in re.split(r"[\s,]+", raw.strip()) if name]


def policy_of(visitor: Visitor) -> WritePolicy:
    policy: WritePolicy = state_of(visitor.request).write_policy
    return policy


async def list_namespaces(visitor: Visitor) -> tuple[list[NamespaceRead], bool]:
    """Every namespace of the tenant (up to ``MAX_LISTED``), and whether there were more."""
    found: list[NamespaceRead] = []
    cursor: str | None = None
    while len(found) < MAX_LISTED:
        listed = await namespaces.list_page(
            visitor.session, principal=visitor.principal, prefix=None, cursor=cursor, limit=_PAGE
        )
        found.extend(listed.items)
        cursor = listed.next_cursor
        if cursor is None:
            break
    return found, cursor is not None


async def names_of(visitor: Visitor, actors: list[str]) -> dict[str, str]:
    names = await users.display_names(visitor.session, principal=visitor.principal, actors=actors)
    names[visitor.principal.actor] = "you"
    return names


async def key_search(visitor: Visitor, q: str) -> SearchRead | None:
    """Keys whose name, description or value holds ``q`` (None: a query search refuses)."""
    state = state_of(visitor.request)
    try:
        return await search.search(
            visitor.session,
            index=state.search_index,
            keyring=state.write_policy.keyring,
            principal=visitor.principal,
            q=q,
            limit=KEY_HITS,
        )
    except ValidationFailed:
        return None


async def dashboard_page(
    visitor: Visitor,
    *,
    q: str = "",
    status_code: int = 200,
    create: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    found, truncated = await list_namespaces(visitor)
    query = q.strip().lower()
    shown = [n for n in found if query in n.name] if query else found
    hits = await key_search(visitor, q) if query else None
    return page(
        visitor.request,
        "dashboard.html",
        visitor,
        status_code=status_code,
        tree=build_tree(shown),
        total=len(found),
        shown=len(shown),
        truncated=truncated,
        q=q,
        people=await names_of(visitor, [n.updated_by for n in shown]),
        hits=hits,
        create=create or {},
        errors=errors or {},
        name_rules=NAME_RULES,
    )


@router.get("")
async def dashboard(visitor: SignedIn, q: str = "") -> Response:
    """The tenant's namespaces as a tree, with revision, entry count and last change."""
    return await dashboard_page(visitor, q=q)


@router.post("/namespaces")
async def create_namespace(visitor: SignedIn) -> Response:
    """Create a namespace (admins), then open it."""
    form = await visitor.request.form()
    fields = {name: text(form, name).strip() for name in ("name", "description", "includes")}
    errors: dict[str, str] = {}
    try:
        payload = NamespaceCreate(
            name=fields["name"],
            description=fields["description"],
            includes=split_names(fields["includes"]),
        )
        created = await namespaces.create(
            visitor.session, principal=visitor.principal, payload=payload
        )
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "name"
            errors.setdefault(where, f"Use {NAME_RULES}." if where == "name" else error["msg"])
    except Conflict as exc:
        errors["name"] = f"{exc.message[0].upper()}{exc.message[1:]}: pick another name."
    except ValidationFailed as exc:
        errors["includes"] = exc.message.removeprefix("includes: ")
    if errors:
        await visitor.restart()
        return await dashboard_page(visitor, status_code=422, create=fields, errors=errors)
    return redirect(
        visitor.request,
        f"/ui/namespaces/{created.id}",
        flash=f"Created {created.name}. Add its first entry below.",
    )


async def list_entries(visitor: Visitor, namespace_id: uuid.UUID) -> tuple[list[Any], bool]:
    found: list[Any] = []
    cursor: str | None = None
    while len(found) < MAX_LISTED:
        entries, cursor = await configs.list_page(
            visitor.session,
            principal=visitor.principal,
            namespace_id=namespace_id,
            cursor=cursor,
            limit=_PAGE,
        )
        found.extend(entries)
        if cursor is None:
            break
    return found, cursor is not None


async def entries_context(
    visitor: Visitor, namespace: NamespaceRead, reveal: str | None
) -> dict[str, Any]:
    """What the entries table needs; at most the one secret asked for is revealed."""
    if reveal:
        configs.may_reveal(visitor.principal, True)
    found, truncated = await list_entries(visitor, namespace.id)
    policy = policy_of(visitor)
    entries: list[ConfigRead] = [
        configs.render(policy, entry, reveal=entry.key == reveal) for entry in found
    ]
    if reveal and any(e.key == reveal and e.is_secret for e in found):
        await audit.record_reveal(
            visitor.session, namespace=namespace.name, keys=[reveal], via="entry"
        )
    return {
        "namespace": namespace,
        "entries": entries,
        "entries_truncated": truncated,
        "revealed": reveal if any(e.key == reveal for e in entries) else None,
        "people": await names_of(visitor, [e.updated_by for e in entries] + [namespace.updated_by]),
    }


async def template_badge(visitor: Visitor, namespace: Namespace) -> dict[str, Any]:
    """What the namespace's head says of its template: conforming or not, and why."""
    report = await templates.conformance(
        visitor.session,
        policy=policy_of(visitor),
        principal=visitor.principal,
        namespace_id=namespace.id,
    )
    envs = report.environments
    if namespace.template:
        failing = sum(1 for env in envs if not env.conforms)
        return {"declares": True, "source": report.template, "count": len(envs), "failing": failing}
    verdict = envs[0] if envs else None
    return {
        "declares": False,
        "source": report.template,
        "conforms": verdict is None or verdict.conforms,
        "missing": verdict.missing if verdict else [],
        "wrong": [w.key for w in verdict.wrong_type] if verdict else [],
        "invalid": [i.key for i in verdict.invalid] if verdict else [],
    }


async def namespace_page(
    visitor: Visitor,
    namespace_id: uuid.UUID,
    *,
    reveal: str | None = None,
    status_code: int = 200,
    add_form: EntryForm | None = None,
    settings: dict[str, str] | None = None,
    settings_errors: dict[str, str] | None = None,
) -> Response:
    found = await namespaces.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id
    )
    namespace = await namespaces.render_one(visitor.session, namespace=found)
    context = await entries_context(visitor, namespace, reveal)
    badge = await template_badge(visitor, found) if found.contract or found.template else None
    return page(
        visitor.request,
        "namespace.html",
        visitor,
        template_badge=badge,
        status_code=status_code,
        add_form=add_form or EntryForm(),
        settings=settings
        or {"description": namespace.description, "includes": ", ".join(namespace.includes)},
        settings_errors=settings_errors or {},
        segments=namespace.name.split("/"),
        protection=found.protection,
        **context,
    )


@router.get("/namespaces/{namespace_id}")
async def namespace_view(
    visitor: SignedIn, namespace_id: uuid.UUID, reveal: str | None = None
) -> Response:
    """A namespace: its entries (secrets masked), the editor, live updates."""
    return await namespace_page(visitor, namespace_id, reveal=reveal)


@router.get("/namespaces/{namespace_id}/entries")
async def entries_fragment(
    visitor: SignedIn, namespace_id: uuid.UUID, reveal: str | None = None
) -> Response:
    """Just the entries table, for the page to swap in when the namespace changes."""
    found = await namespaces.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id
    )
    namespace = await namespaces.render_one(visitor.session, namespace=found)
    context = await entries_context(visitor, namespace, reveal)
    response = page(visitor.request, "_entries.html", visitor, fragment=True, **context)
    response.headers["X-Konfig-Revision"] = str(namespace.revision)
    return response


@router.post("/namespaces/{namespace_id}/settings")
async def update_namespace(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Change a namespace's description and includes (admins)."""
    form = await visitor.request.form()
    fields = {name: text(form, name).strip() for name in ("description", "includes")}
    try:
        payload = NamespaceUpdate(
            description=fields["description"], includes=split_names(fields["includes"])
        )
        await namespaces.update(
            visitor.session, principal=visitor.principal, namespace_id=namespace_id, payload=payload
        )
    except ValidationError as exc:
        errors = {str(e["loc"][0]) if e["loc"] else "description": e["msg"] for e in exc.errors()}
    except ValidationFailed as exc:
        errors = {"includes": exc.message.removeprefix("includes: ")}
    else:
        return redirect(
            visitor.request, f"/ui/namespaces/{namespace_id}", flash="Namespace settings saved."
        )
    await visitor.restart()
    return await namespace_page(
        visitor, namespace_id, status_code=422, settings=fields, settings_errors=errors
    )


@router.post("/namespaces/{namespace_id}/delete")
async def delete_namespace(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Delete a namespace (admins); one that still holds entries needs the box ticked."""
    form = await visitor.request.form()
    found = await namespaces.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id
    )
    name = found.name
    try:
        await namespaces.delete(
            visitor.session,
            principal=visitor.principal,
            namespace_id=namespace_id,
            force=text(form, "force") == "yes",
            policy=state_of(visitor.request).write_policy,
        )
    except Conflict as exc:
        await visitor.restart()
        return await namespace_page(
            visitor, namespace_id, status_code=409, settings_errors={"delete": exc.message}
        )
    return redirect(visitor.request, "/ui", flash=f"Deleted namespace {name}.")


def _event(revision: int) -> str:
    return f"id: {revision}\nevent: revision\ndata: {revision}\n\n"


@router.get("/namespaces/{namespace_id}/events")
async def namespace_events(
    visitor: SignedIn,
    namespace_id: uuid.UUID,
    since: int | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Server-sent events: the namespace's new revision, each time one is committed."""
    ui = state_of(visitor.request).ui
    subscription = ui.feed.subscribe(namespace_id)  # before reading, so nothing slips between
    try:
        found = await namespaces.get(
            visitor.session, principal=visitor.principal, namespace_id=namespace_id
        )
    except BaseException:
        await subscription.aclose()
        raise
    current = found.revision
    seen = int(last_event_id) if last_event_id and last_event_id.isdigit() else since

    async def stream() -> AsyncIterator[str]:
        told = current if seen is None else seen  # the revision the page shows
        try:
            yield "retry: 2000\n\n"
            if current > told:
                yield _event(current)
                told = current
            deadline = time.monotonic() + ui.stream_seconds
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    revision = await asyncio.wait_for(
                        anext(subscription), timeout=min(ui.keepalive_seconds, remaining)
                    )
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                except StopAsyncIteration:
                    break
                if revision > told:  # an announcement may leave the revision as it was
                    yield _event(revision)
                    told = revision
        finally:
            await subscription.aclose()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
