"""The resolved view: a namespace's configuration exactly as a service receives it, merged over
its ancestors and includes, with the namespace and revision each key comes from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from konfig.audit import service as audit
from konfig.configs import service as configs
from konfig.configs.schemas import MASK
from konfig.delivery import resolve
from konfig.delivery.resolve import Source
from konfig.errors import Forbidden, NotFound
from konfig.web.history_pages import namespace_context, namespace_of
from konfig.web.namespace_pages import policy_of
from konfig.web.rendering import page
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn

router = APIRouter(route_class=UIRoute)


@dataclass(frozen=True, slots=True)
class ResolvedKey:
    key: str
    value: Any
    secret: bool
    source: Source
    source_id: uuid.UUID | None
    overrides: list[Source]
    references: list[str]  # ``namespace:key`` links the value was built from


@router.get("/namespaces/{namespace_id}/resolved")
async def resolved_view(visitor: SignedIn, namespace_id: uuid.UUID, reveal: str = "") -> Response:
    """The resolved configuration with the source of each key; secrets masked unless revealed."""
    revealing = configs.may_reveal(visitor.principal, reveal == "1")
    namespace = await namespace_of(visitor, namespace_id)
    resolution = await resolve.load(
        visitor.session,
        keyring=policy_of(visitor).keyring,
        tenant_id=visitor.principal.tenant_id,
        name=namespace.name,
    )
    if resolution is None:  # deleted a moment ago
        raise NotFound(f"no namespace {namespace.name}")
    # As the read path: a resolved config draws only on namespaces the visitor may read (an
    # include, or what its references read; path ancestors count as part of the namespace).
    names = [layer.name for layer in resolution.layers]
    readable = [name for name in names if visitor.principal.allows(name, "read")]
    for name in names:
        if not any(r == name or r.startswith(name + "/") for r in readable):
            raise Forbidden(
                f"you may not read namespace {name}, which {namespace.name} draws on: the "
                "resolved view shows only what you may read",
                {"namespace": name},
            )
    ids = {layer.name: layer.id for layer in resolution.layers}
    rows = []
    for key, value in resolution.values.items():
        source = resolution.sources[key]
        overrides = list(reversed(resolution.overrides.get(key, [])))
        # Secret where any layer that defines it says so: an override must not unmask it.
        is_secret = key in resolution.secrets
        rows.append(
            ResolvedKey(
                key=key,
                value=MASK if is_secret and not revealing else value,
                secret=is_secret,
                source=source,
                source_id=ids.get(source.namespace),
                overrides=overrides,
                references=resolution.references.get(key, []),
            )
        )
    if revealing and any(row.secret for row in rows):
        await audit.record(
            visitor.session,
            action="config.reveal",
            target_type="resolved",
            target=namespace.name,
            namespace=namespace.name,
        )
    return page(
        visitor.request,
        "resolved.html",
        visitor,
        rows=rows,
        layers=resolution.layers,
        revealing=revealing,
        has_secrets=any(row.secret for row in rows),
        **namespace_context(namespace),
    )
