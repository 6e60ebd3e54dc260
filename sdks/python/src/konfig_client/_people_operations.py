"""The flows of users, their grants, and the tenant's single sign-on settings."""

from __future__ import annotations

import uuid
from typing import Any

from konfig_client._base import API, Call, Flow, paginate, quote_segment
from konfig_client._exceptions import NotFound

UserRef = str | uuid.UUID  # an email, or a user's id


def list_users() -> Flow[list[dict[str, Any]]]:
    return (yield from paginate(f"{API}/users", {"limit": 200}))


def user_id(user: UserRef) -> Flow[str]:
    """The id of a user given by email (or already by id)."""
    if isinstance(user, uuid.UUID):
        return str(user)
    try:
        return str(uuid.UUID(user))
    except ValueError:
        pass
    for found in (yield from list_users()):
        if found["email"] == user.lower():
            return str(found["id"])
    raise NotFound(f"no user {user}", status_code=404, code="NOT_FOUND", details={})


def create_user(
    email: str,
    password: str,
    *,
    role: str | None,
    grants: list[dict[str, str]] | None,
    full_name: str,
) -> Flow[dict[str, Any]]:
    body: dict[str, Any] = {"email": email, "password": password, "full_name": full_name}
    if role is not None:
        body["role"] = role
    if grants is not None:
        body["grants"] = grants
    response = yield Call("POST", f"{API}/users", json=body)
    return response.json()  # type: ignore[no-any-return]


def get_user(user: UserRef) -> Flow[dict[str, Any]]:
    found = yield from user_id(user)
    response = yield Call("GET", f"{API}/users/{quote_segment(found)}")
    return response.json()  # type: ignore[no-any-return]


def set_grants(user: UserRef, grants: list[dict[str, str]]) -> Flow[dict[str, Any]]:
    found = yield from user_id(user)
    response = yield Call(
        "PUT", f"{API}/users/{quote_segment(found)}/grants", json={"grants": grants}
    )
    return response.json()  # type: ignore[no-any-return]


def get_sso() -> Flow[dict[str, Any]]:
    response = yield Call("GET", f"{API}/sso")
    return response.json()  # type: ignore[no-any-return]


def put_sso(settings: dict[str, Any]) -> Flow[dict[str, Any]]:
    response = yield Call("PUT", f"{API}/sso", json=settings)
    return response.json()  # type: ignore[no-any-return]


def list_groups() -> Flow[list[dict[str, Any]]]:
    response = yield Call("GET", f"{API}/groups")
    return response.json()  # type: ignore[no-any-return]


def group_id(group: str | uuid.UUID) -> Flow[str]:
    """The id of a group given by name or by id."""
    if isinstance(group, uuid.UUID):
        return str(group)
    for found in (yield from list_groups()):
        if group in (found["name"], found["id"]):
            return str(found["id"])
    raise NotFound(f"no group named {group!r}", status_code=404, code="NOT_FOUND", details={})


def create_group(name: str, grants: list[dict[str, str]], description: str) -> Flow[dict[str, Any]]:
    body = {"name": name, "grants": grants, "description": description}
    response = yield Call("POST", f"{API}/groups", json=body)
    return response.json()  # type: ignore[no-any-return]


def set_group_grants(group: str | uuid.UUID, grants: list[dict[str, str]]) -> Flow[dict[str, Any]]:
    found = yield from group_id(group)
    response = yield Call(
        "PUT", f"{API}/groups/{quote_segment(found)}/grants", json={"grants": grants}
    )
    return response.json()  # type: ignore[no-any-return]


def delete_group(group: str | uuid.UUID) -> Flow[None]:
    found = yield from group_id(group)
    yield Call("DELETE", f"{API}/groups/{quote_segment(found)}")


def set_groups(user: UserRef, groups: list[str]) -> Flow[dict[str, Any]]:
    found = yield from user_id(user)
    response = yield Call(
        "PUT", f"{API}/users/{quote_segment(found)}/groups", json={"groups": groups}
    )
    return response.json()  # type: ignore[no-any-return]
