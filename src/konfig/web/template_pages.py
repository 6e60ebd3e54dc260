"""A namespace's template: the contract it declares for the environments under it (or the one
that governs it), each environment's conformance, and creating an environment from it."""

from __future__ import annotations

import uuid

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.environments import templates
from konfig.environments.templates import EnvironmentCreate
from konfig.errors import Forbidden, KonfigError
from konfig.namespaces.templates import Template
from konfig.users.models import Role
from konfig.web.forms import text
from konfig.web.history_pages import namespace_context, namespace_of
from konfig.web.namespace_pages import policy_of
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(route_class=UIRoute)

EXAMPLE = {
    "keys": [
        {"key": "db_host", "value_type": "string", "required": True, "description": "DB host"},
        {
            "key": "max_connections",
            "value_type": "number",
            "validation_schema": {"min_value": 1, "max_value": 500},
            "required": True,
            "default": 20,
        },
    ]
}


async def template_page(
    visitor: Visitor,
    namespace_id: uuid.UUID,
    *,
    status_code: int = 200,
    problem: str = "",
    draft: str | None = None,
    new_name: str = "",
) -> Response:
    namespace = await namespace_of(visitor, namespace_id)
    declared = await templates.read(
        visitor.session, principal=visitor.principal, namespace_id=namespace_id
    )
    report = await templates.conformance(
        visitor.session,
        policy=policy_of(visitor),
        principal=visitor.principal,
        namespace_id=namespace_id,
    )
    role = visitor.principal.role_on(namespace.name)
    shown = declared.template.model_dump(mode="json") if declared.template else EXAMPLE
    return page(
        visitor.request,
        "template.html",
        visitor,
        status_code=status_code,
        declared=declared,
        report=report,
        can_admin=role is not None and role.at_least(Role.admin),
        draft=draft
        if draft is not None
        else orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode(),
        problem=problem,
        new_name=new_name or f"{namespace.name}/",
        **namespace_context(namespace),
    )


@router.get("/namespaces/{namespace_id}/template")
async def template_view(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """The namespace's template and how each environment conforms to it."""
    return await template_page(visitor, namespace_id)


async def _failed(visitor: Visitor, exc: KonfigError) -> None:
    if isinstance(exc, Forbidden):
        await visitor.refused(exc)
    else:
        await visitor.restart()


@router.post("/namespaces/{namespace_id}/template")
async def template_save(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Declare (or, emptied, drop) the template (admins)."""
    form = await visitor.request.form()
    raw = text(form, "template").strip()
    try:
        template = Template.model_validate_json(raw) if raw else None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "template"
        return await template_page(
            visitor, namespace_id, status_code=422, problem=f"{where}: {first['msg']}", draft=raw
        )
    try:
        await templates.put(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            namespace_id=namespace_id,
            template=template,
        )
    except KonfigError as exc:
        await _failed(visitor, exc)
        return await template_page(
            visitor, namespace_id, status_code=exc.status_code, problem=exc.message, draft=raw
        )
    flash = "Saved the template." if template is not None else "Dropped the template."
    return redirect(visitor.request, f"/ui/namespaces/{namespace_id}/template", flash=flash)


@router.post("/namespaces/{namespace_id}/template/environments")
async def environment_create(visitor: SignedIn, namespace_id: uuid.UUID) -> Response:
    """Create an environment from the template, its defaults as the first revision."""
    form = await visitor.request.form()
    name = text(form, "name").strip()
    try:
        created = await templates.create_environment(
            visitor.session,
            policy=policy_of(visitor),
            principal=visitor.principal,
            namespace_id=namespace_id,
            payload=EnvironmentCreate(name=name[:255] or "-"),
        )
    except KonfigError as exc:
        await _failed(visitor, exc)
        return await template_page(
            visitor, namespace_id, status_code=exc.status_code, problem=exc.message, new_name=name
        )
    return redirect(
        visitor.request,
        f"/ui/namespaces/{created.id}",
        flash=f"Created {created.name} from the template, with its defaults.",
    )
