"""Administration of users: add, change role, deactivate (tokens, audit and backups have their
own modules)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from konfig.errors import Conflict, Forbidden
from konfig.users import service as users
from konfig.users.models import Role
from konfig.users.schemas import GrantsUpdate, UserCreate, UserRead, UserUpdate
from konfig.web.forms import text
from konfig.web.rendering import page, redirect
from konfig.web.routing import UIRoute
from konfig.web.session import SignedIn, Visitor

router = APIRouter(prefix="/admin", route_class=UIRoute)

ROLES = [role.value for role in Role]
MAX_USERS = 2000


async def all_users(visitor: Visitor) -> list[UserRead]:
    found: list[UserRead] = []
    cursor: str | None = None
    while len(found) < MAX_USERS:
        listed = await users.list_page(
            visitor.session, principal=visitor.principal, cursor=cursor, limit=200
        )
        found.extend(listed.items)
        cursor = listed.next_cursor
        if cursor is None:
            break
    return found


async def users_page(
    visitor: Visitor,
    *,
    status_code: int = 200,
    add: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    visitor.principal.require(Role.admin)
    return page(
        visitor.request,
        "users.html",
        visitor,
        status_code=status_code,
        users=await all_users(visitor),
        roles=ROLES,
        add=add or {"role": Role.viewer.value},
        errors=errors or {},
    )


@router.get("/users")
async def users_list(visitor: SignedIn) -> Response:
    """The organisation's users with their roles (admins)."""
    return await users_page(visitor)


@router.post("/users")
async def add_user(visitor: SignedIn) -> Response:
    """Add a user with a role and a first password."""
    form = await visitor.request.form()
    fields = {name: text(form, name).strip() for name in ("email", "full_name", "role")}
    errors: dict[str, str] = {}
    refusal: Forbidden | None = None
    try:
        payload = UserCreate(
            email=fields["email"],
            full_name=fields["full_name"],
            role=Role(fields["role"]) if fields["role"] in ROLES else Role.viewer,
            password=text(form, "password"),
        )
        created = await users.create(visitor.session, principal=visitor.principal, payload=payload)
    except ValidationError as exc:
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(
                where,
                {
                    "email": "Enter an email address, like jane@example.com.",
                    "password": "Use at least 8 characters.",
                }.get(where, str(error["msg"])),
            )
    except Conflict as exc:
        errors["email"] = f"{exc.message[0].upper()}{exc.message[1:]}."
    except Forbidden as exc:
        errors["role"] = f"{exc.message[0].upper()}{exc.message[1:]}."
        refusal = exc
    if errors:
        await (visitor.refused(refusal) if refusal is not None else visitor.restart())
        return await users_page(visitor, status_code=422, add=fields, errors=errors)
    return redirect(
        visitor.request,
        "/ui/admin/users",
        flash=f"Added {created.email} as {created.role.value}. Give them their password "
        "through a channel you trust; they can change it after signing in.",
    )


async def _update(visitor: Visitor, user_id: uuid.UUID, payload: UserUpdate, done: str) -> Response:
    try:
        changed = await users.update(
            visitor.session, principal=visitor.principal, user_id=user_id, payload=payload
        )
    except (Conflict, Forbidden) as exc:
        await (visitor.refused(exc) if isinstance(exc, Forbidden) else visitor.restart())
        return await users_page(
            visitor, status_code=exc.status_code, errors={str(user_id): exc.message}
        )
    return redirect(visitor.request, "/ui/admin/users", flash=done.format(email=changed.email))


@router.post("/users/{user_id}/role")
async def change_role(visitor: SignedIn, user_id: uuid.UUID) -> Response:
    """Give a user another role."""
    role = text(await visitor.request.form(), "role")
    if role not in ROLES:
        return await users_page(visitor, status_code=422, errors={str(user_id): "Choose a role."})
    return await _update(visitor, user_id, UserUpdate(role=Role(role)), f"{{email}} is now {role}.")


def grant_lines(raw: str) -> list[dict[str, str]]:
    """``editor payments/**`` per line → grants (validated by ``GrantsUpdate``)."""
    grants = []
    for line in raw.splitlines():
        role, _, pattern = line.strip().partition(" ")
        if role:
            grants.append({"role": role, "namespaces": pattern.strip()})
    return grants


@router.post("/users/{user_id}/grants")
async def change_grants(visitor: SignedIn, user_id: uuid.UUID) -> Response:
    """Replace a user's grants, one 'role pattern' per line."""
    where = f"grants-{user_id}"
    try:
        payload = GrantsUpdate.model_validate(
            {"grants": grant_lines(text(await visitor.request.form(), "grants"))}
        )
        changed = await users.replace_grants(
            visitor.session, principal=visitor.principal, user_id=user_id, payload=payload
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        line = first["loc"][1] if len(first["loc"]) > 1 else None
        where_in = f"Line {line + 1}: " if isinstance(line, int) else ""
        message = f"{where_in}{first['msg'].removeprefix('Value error, ')}."
        return await users_page(visitor, status_code=422, errors={where: message})
    except (Conflict, Forbidden) as exc:
        await (visitor.refused(exc) if isinstance(exc, Forbidden) else visitor.restart())
        return await users_page(visitor, status_code=exc.status_code, errors={where: exc.message})
    return redirect(
        visitor.request, "/ui/admin/users", flash=f"Saved the grants of {changed.email}."
    )


@router.post("/users/{user_id}/active")
async def set_active(visitor: SignedIn, user_id: uuid.UUID) -> Response:
    """Deactivate a user (their logins end at once) or reactivate them."""
    active = text(await visitor.request.form(), "active") == "yes"
    done = "{email} can sign in again." if active else "{email} is deactivated and signed out."
    return await _update(visitor, user_id, UserUpdate(is_active=active), done)
