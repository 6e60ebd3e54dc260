"""Groups carry grants: members hold them beside their own; every change follows at once."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, add_user, assert_error
from tests.support.grants import add_granted, audit_of, grant
from tests.support.readpath import make_namespace, put_entry


async def _group(
    client: httpx.AsyncClient, admin: Account, name: str, grants: list[dict[str, str]]
) -> dict[str, Any]:
    made = await client.post(
        "/api/v1/groups", headers=admin.headers, json={"name": name, "grants": grants}
    )
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


async def _join(
    client: httpx.AsyncClient, admin: Account, user_id: str, groups: list[str]
) -> httpx.Response:
    return await client.put(
        f"/api/v1/users/{user_id}/groups", headers=admin.headers, json={"groups": groups}
    )


async def test_members_hold_their_groups_grants_until_they_change(
    client: httpx.AsyncClient, owner: Account
) -> None:
    staging = await make_namespace(client, owner, "payments/staging")
    dev = await add_granted(client, owner, "dev@acme.example.com", [grant("viewer", "**")])
    group = await _group(client, owner, "payments-devs", [grant("editor", "payments/**")])
    assert_error(await put_entry(client, dev.headers, staging, "pool", "5"), 403, "FORBIDDEN")

    joined = await _join(client, owner, dev.user_id, ["payments-devs"])
    assert joined.status_code == 200, joined.text
    assert joined.json()["groups"] == ["payments-devs"]
    assert joined.json()["group_grants"] == [grant("editor", "payments/**")]
    assert joined.json()["grants"] == [grant("viewer", "**")]
    assert (await put_entry(client, dev.headers, staging, "pool", "5")).status_code == 201
    listed = (await client.get("/api/v1/groups", headers=owner.headers)).json()
    assert [(g["name"], g["members"]) for g in listed] == [
        ("payments-devs", ["dev@acme.example.com"])
    ]

    narrowed = await client.put(
        f"/api/v1/groups/{group['id']}/grants",
        headers=owner.headers,
        json={"grants": [grant("viewer", "payments/**")]},
    )
    assert narrowed.status_code == 200, narrowed.text
    assert_error(await put_entry(client, dev.headers, staging, "pool", "6"), 403, "FORBIDDEN")

    await client.put(
        f"/api/v1/groups/{group['id']}/grants",
        headers=owner.headers,
        json={"grants": [grant("admin", "**")]},
    )
    me = (await client.get("/api/v1/users/me", headers=dev.headers)).json()
    assert me["role"] == "admin"  # the tenant role counts what groups grant on **
    deleted = await client.delete(f"/api/v1/groups/{group['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    me = (await client.get("/api/v1/users/me", headers=dev.headers)).json()
    assert me["groups"] == [] and me["group_grants"] == [] and me["role"] == "viewer"
    actions = [e["action"] for e in await audit_of(client, owner, "group.")]
    assert sorted(actions) == ["group.create", "group.delete", "group.grants", "group.grants"]
    [joined_event] = await audit_of(client, owner, "user.groups")
    assert joined_event["summary"]["after"] == {"groups": ["payments-devs"]}


async def test_bad_groups_and_memberships_are_refused(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    group = await _group(client, owner, "ops", [grant("viewer", "**")])
    duplicate = await client.post("/api/v1/groups", headers=owner.headers, json={"name": "ops"})
    assert_error(duplicate, 409, "CONFLICT")
    owners = await client.post(
        "/api/v1/groups",
        headers=owner.headers,
        json={"name": "x", "grants": [grant("owner", "**")]},
    )
    assert "never through a group" in assert_error(owners, 422, "VALIDATION_ERROR")["message"]
    bad_name = await client.post("/api/v1/groups", headers=owner.headers, json={"name": "Ops!"})
    assert_error(bad_name, 422, "VALIDATION_ERROR")
    unknown = assert_error(
        await _join(client, owner, editor.user_id, ["nope"]), 422, "VALIDATION_ERROR"
    )
    assert unknown["details"]["missing"] == ["nope"]
    assert_error(await client.get("/api/v1/groups", headers=editor.headers), 403, "FORBIDDEN")
    assert_error(await _join(client, editor, editor.user_id, ["ops"]), 403, "FORBIDDEN")
    admin = await add_user(client, owner, "admin@acme.example.com", "admin")
    above = await client.put(
        f"/api/v1/groups/{group['id']}/grants",
        headers=admin.headers,
        json={"grants": [grant("admin", "**"), grant("editor", "x/**")]},
    )
    assert above.status_code == 200  # admin grants up to admin
    assert_error(
        await client.delete(f"/api/v1/groups/{group['id']}", headers=other_tenant.headers),
        404,
        "NOT_FOUND",
    )
    assert_error(await _join(client, other_tenant, editor.user_id, []), 404, "NOT_FOUND")
