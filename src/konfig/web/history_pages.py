"""History, diff, rollback and the resolved view of a namespace.

These pages front the revisions and read-path services. Where this server does not have them
yet, each page says so and points to what can be done meanwhile, rather than failing.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import Response

from konfig.namespaces import service as namespaces
from konfig.web.rendering import page
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)

_FEATURES = {
    "history": (
        "History",
        "Every revision of this namespace: who changed which keys, when and why, with a diff "
        "between any two revisions and a rollback that shows its diff before anything changes.",
    ),
    "entry-history": (
        "Entry history",
        "Every version of this entry, who wrote it and when, and a way to bring an old version "
        "back.",
    ),
    "diff": (
        "Compare revisions",
        "What was added, removed and changed between two revisions of this namespace.",
    ),
    "rollback": (
        "Roll back",
        "Restore this namespace as it was at an earlier revision, after reviewing the diff.",
    ),
    "resolved": (
        "Resolved configuration",
        "The configuration exactly as a service receives it: this namespace merged over its "
        "parents and includes, with where each key comes from.",
    ),
}


async def unavailable(
    visitor: Visitor, namespace_id: uuid.UUID, feature: str, *, key: str | None = None
) -> Response:
    found = await namespaces.get(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id
    )
    namespace = await namespaces.render_one(visitor.session, namespace=found)
    title, purpose = _FEATURES[feature]
    return page(
        visitor.request,
        "unavailable.html",
        visitor,
        title=title,
        purpose=purpose,
        feature=feature,
        namespace=namespace,
        segments=namespace.name.split("/"),
        key=key,
    )


@router.get("/namespaces/{namespace_id}/history")
async def namespace_history(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """The namespace's revisions, newest first."""
    return await unavailable(visitor, namespace_id, "history")


@router.get("/namespaces/{namespace_id}/entries/{key}/history")
async def entry_history(visitor: SignedIn, namespace_id: uuid.UUID, key: str) -> Response:
    """Every version of one entry."""
    return await unavailable(visitor, namespace_id, "entry-history", key=key)


@router.get("/namespaces/{namespace_id}/diff")
async def revision_diff(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Added, removed and changed keys between two revisions."""
    return await unavailable(visitor, namespace_id, "diff")


@router.get("/namespaces/{namespace_id}/rollback")
async def rollback_confirm(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """The diff a rollback would apply, to confirm before anything changes."""
    return await unavailable(visitor, namespace_id, "rollback")


@router.get("/namespaces/{namespace_id}/resolved")
async def resolved_view(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """The resolved configuration with the source of each key."""
    return await unavailable(visitor, namespace_id, "resolved")
