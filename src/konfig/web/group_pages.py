"""Groups in the UI (admins): make one, edit its grants, delete it; a user's groups are set on
the users page."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.errors import Conflict, NotFound, ValidationFailed
from konfig.groups import service as groups
from konfig.groups.schemas import GroupCreate, GroupGrants, Memberships
from konfig.users.models import Role
from konfig.web.admin_pages import grant_lines, users_page
from konfig.web.forms import text
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(prefix="/admin", route_class=UIRoute)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    line = first["loc"][1] if len(first["loc"]) > 1 and first["loc"][0] == "grants" else None
    where = f"Line {line + 1}: " if isinstance(line, int) else ""
    return f"{where}{first['msg'].removeprefix('Value error, ')}."


async def groups_page(
    visitor: Visitor,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    add: dict[str, str] | None = None,
) -> Response:
    return page(
        visitor.request,
        "groups.html",
        visitor,
        status_code=status_code,
        groups=await groups.list_groups(visitor.session, principal=visitor.principal),
        errors=errors or {},
        add=add or {},
    )


@router.get("/groups")
async def groups_list(visitor: SignedIn) -> Response:
    """The organisation's groups, their grants and members (admins)."""
    visitor.principal.require(Role.admin)
    return await groups_page(visitor)


@router.post("/groups")
async def add_group(visitor: SignedIn) -> Response:
    """Make a group with grants, one 'role pattern' per line."""
    form = await visitor.request.form()
    fields = {"name": text(form, "name").strip(), "grants": text(form, "grants")}
    try:
        payload = GroupCreate.model_validate(
            {"name": fields["name"], "grants": grant_lines(fields["grants"])}
        )
        made = await groups.create(visitor.session, principal=visitor.principal, payload=payload)
    except ValidationError as exc:
        where = "name" if exc.errors()[0]["loc"][0] == "name" else "grants"
        message = "Use lowercase letters, digits, '_', '.' and '-'." if where == "name" else ""
        errors = {where: message or _first_error(exc)}
        return await groups_page(visitor, status_code=422, errors=errors, add=fields)
    except Conflict as exc:
        await visitor.restart()
        errors = {"name": f"{exc.message[0].upper()}{exc.message[1:]}."}
        return await groups_page(visitor, status_code=409, errors=errors, add=fields)
    return redirect(visitor.request, "/ui/admin/groups", flash=f"Made the group {made.name}.")


@router.post("/groups/{group_id}/grants")
async def change_group_grants(visitor: SignedIn, group_id: uuid.UUID) -> Response:
    """Replace a group's grants."""
    try:
        payload = GroupGrants.model_validate(
            {"grants": grant_lines(text(await visitor.request.form(), "grants"))}
        )
        changed = await groups.replace_grants(
            visitor.session, principal=visitor.principal, group_id=group_id, payload=payload
        )
    except ValidationError as exc:
        errors = {f"grants-{group_id}": _first_error(exc)}
        return await groups_page(visitor, status_code=422, errors=errors)
    return redirect(
        visitor.request, "/ui/admin/groups", flash=f"Saved the grants of {changed.name}."
    )


@router.post("/groups/{group_id}/delete")
async def delete_group(visitor: SignedIn, group_id: uuid.UUID) -> Response:
    """Delete a group; its members lose what it granted."""
    await groups.delete(visitor.session, principal=visitor.principal, group_id=group_id)
    return redirect(visitor.request, "/ui/admin/groups", flash="Deleted the group.")


@router.post("/users/{user_id}/groups")
async def change_user_groups(visitor: SignedIn, user_id: uuid.UUID) -> Response:
    """Set the groups a user belongs to (names separated by spaces or commas)."""
    raw = text(await visitor.request.form(), "groups").replace(",", " ")
    where = f"groups-{user_id}"
    try:
        payload = Memberships(groups=raw.split())
        changed = await groups.set_memberships(
            visitor.session, principal=visitor.principal, user_id=user_id, payload=payload
        )
    except (ValidationFailed, NotFound) as exc:
        await visitor.restart()
        message = f"{exc.message[0].upper()}{exc.message[1:]}."
        return await users_page(visitor, status_code=exc.status_code, errors={where: message})
    return redirect(
        visitor.request, "/ui/admin/users", flash=f"Saved the groups of {changed.email}."
    )
