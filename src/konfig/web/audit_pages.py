"""The audit log (admins): who did what, to which namespace, when; filtered and paginated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from konfig.audit import service as audit
from konfig.errors import ValidationFailed
from konfig.users.models import Role
from konfig.web.admin_pages import all_users
from konfig.web.namespace_pages import list_namespaces, names_of
from konfig.web.rendering import page
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn

router = APIRouter(prefix="/admin", route_class=UIRoute)

PER_PAGE = 50
FILTERS = ("actor", "action", "namespace", "since", "until")
COMMON_ACTIONS = (  # suggestions; any action, or a prefix ending in ".", may be typed
    "config.",
    "config.create",
    "config.update",
    "config.delete",
    "config.batch",
    "config.secret",
    "config.unsecret",
    "config.reveal",
    "namespace.",
    "user.",
    "auth.",
    "auth.login_failed",
    "backup.",
    "permission.denied",
)
Filter = Annotated[str, Query(max_length=300)]


def as_utc(raw: str, name: str) -> str | None:
    """A ``datetime-local`` field (no zone: UTC, as the page says) as ISO 8601 with a zone."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed(f"{name}: enter a date and time, e.g. 2026-11-23 10:00") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


@router.get("/audit")
async def audit_log(
    visitor: SignedIn,
    actor: Filter = "",
    action: Filter = "",
    namespace: Filter = "",
    since: Filter = "",
    until: Filter = "",
    cursor: str | None = Query(None, max_length=500),
) -> Response:
    """The audit log, newest first, with filters (admins)."""
    visitor.principal.require(Role.admin)
    filters = {"actor": actor, "action": action, "namespace": namespace, "since": since}
    filters["until"] = until
    filters = {name: value.strip() for name, value in filters.items()}
    errors: dict[str, str] = {}
    bounds: dict[str, str | None] = {}
    for name in ("since", "until"):
        try:
            bounds[name] = as_utc(filters[name], name)
        except ValidationFailed as exc:
            errors[name] = exc.message.removeprefix(f"{name}: ")
    events: list[dict[str, Any]] = []
    next_cursor = None
    if not errors:
        listed = await audit.list_page(
            visitor.session,
            principal=visitor.principal,
            actor=filters["actor"] or None,
            action=filters["action"] or None,
            namespace=filters["namespace"] or None,
            since=bounds["since"],
            until=bounds["until"],
            cursor=cursor,
            limit=PER_PAGE,
        )
        events, next_cursor = listed.items, listed.next_cursor
    users = await all_users(visitor)
    found_namespaces, _ = await list_namespaces(visitor)
    people = await names_of(visitor, [e["actor"] for e in events])
    return page(
        visitor.request,
        "audit.html",
        visitor,
        status_code=422 if errors else 200,
        events=events,
        filters=filters,
        filtered=any(filters.values()),
        query={k: v for k, v in filters.items() if v},
        errors=errors,
        next_cursor=next_cursor,
        paged=cursor is not None,
        people=people,
        users=users,
        namespace_names=[n.name for n in found_namespaces],
        actions=COMMON_ACTIONS,
    )
