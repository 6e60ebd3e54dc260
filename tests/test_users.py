"""User management: roles, the last owner, tenant isolation."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, Account, add_user, assert_error, login


async def test_admin_adds_lists_and_reads_users(client: httpx.AsyncClient, owner: Account) -> None:
    admin = await add_user(client, owner, "admin@acme.example.com", "admin")
    viewer = await add_user(client, admin, "view@acme.example.com", "viewer")
    listed = await client.get("/api/v1/users", headers=admin.headers)
    assert listed.status_code == 200
    emails = {u["email"] for u in listed.json()["items"]}
    assert emails == {owner.email, admin.email, viewer.email}
    one = await client.get(f"/api/v1/users/{viewer.user_id}", headers=admin.headers)
    assert one.json()["role"] == "viewer"
    assert "password" not in one.text


async def test_users_list_is_paginated(client: httpx.AsyncClient, owner: Account) -> None:
    for i in range(5):
        created = await client.post(
            "/api/v1/users",
            headers=owner.headers,
            json={"email": f"u{i}@acme.example.com", "password": PASSWORD},
        )
        assert created.status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/users", headers=owner.headers, params=params)).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6
    bad = await client.get("/api/v1/users", headers=owner.headers, params={"cursor": "!!nonsense"})
    assert_error(bad, 422, "VALIDATION_ERROR")


async def test_a_viewer_cannot_create_users(client: httpx.AsyncClient, owner: Account) -> None:
    viewer = await add_user(client, owner, "v@acme.example.com", "viewer")
    answer = await client.post(
        "/api/v1/users",
        headers=viewer.headers,
        json={"email": "x@acme.example.com", "password": PASSWORD},
    )
    assert_error(answer, 403, "FORBIDDEN")
    assert_error(await client.get("/api/v1/users", headers=viewer.headers), 403, "FORBIDDEN")


async def test_an_admin_cannot_grant_owner_or_touch_owners(
    client: httpx.AsyncClient, owner: Account
) -> None:
    admin = await add_user(client, owner, "admin@acme.example.com", "admin")
    grant = await client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": "o@acme.example.com", "password": PASSWORD, "role": "owner"},
    )
    assert_error(grant, 403, "FORBIDDEN")
    demote = await client.patch(
        f"/api/v1/users/{owner.user_id}", headers=admin.headers, json={"role": "viewer"}
    )
    assert_error(demote, 403, "FORBIDDEN")


async def test_another_tenants_user_is_not_found(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        body = {"full_name": "x"} if method == "PATCH" else None
        answer = await client.request(
            method, f"/api/v1/users/{other_tenant.user_id}", headers=owner.headers, json=body
        )
        assert_error(answer, 404, "NOT_FOUND")
    listed = await client.get("/api/v1/users", headers=owner.headers)
    assert other_tenant.email not in listed.text


async def test_the_last_owner_cannot_be_removed_or_demoted(
    client: httpx.AsyncClient, owner: Account
) -> None:
    demote = await client.patch(
        f"/api/v1/users/{owner.user_id}", headers=owner.headers, json={"role": "admin"}
    )
    assert_error(demote, 409, "CONFLICT")
    deactivate = await client.patch(
        f"/api/v1/users/{owner.user_id}", headers=owner.headers, json={"is_active": False}
    )
    assert_error(deactivate, 409, "CONFLICT")
    remove = await client.delete(f"/api/v1/users/{owner.user_id}", headers=owner.headers)
    assert_error(remove, 409, "CONFLICT")

    second = await add_user(client, owner, "second@acme.example.com", "owner")
    demoted = await client.patch(
        f"/api/v1/users/{owner.user_id}", headers=second.headers, json={"role": "admin"}
    )
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "admin"


async def test_deleted_users_lose_access(client: httpx.AsyncClient, owner: Account) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    gone = await client.delete(f"/api/v1/users/{editor.user_id}", headers=owner.headers)
    assert gone.status_code == 204
    assert_error(
        await client.get("/api/v1/auth/me", headers=editor.headers), 401, "UNAUTHENTICATED"
    )
    assert_error(
        await client.get(f"/api/v1/users/{editor.user_id}", headers=owner.headers), 404, "NOT_FOUND"
    )


async def test_changing_my_password_needs_the_current_one(
    client: httpx.AsyncClient, owner: Account
) -> None:
    refused = await client.put(
        "/api/v1/users/me", headers=owner.headers, json={"password": "BrandNewPassword1"}
    )
    assert_error(refused, 422, "VALIDATION_ERROR")
    wrong = await client.put(
        "/api/v1/users/me",
        headers=owner.headers,
        json={"password": "BrandNewPassword1", "current_password": "wrong-password"},
    )
    assert_error(wrong, 422, "VALIDATION_ERROR")
    changed = await client.put(
        "/api/v1/users/me",
        headers=owner.headers,
        json={"password": "BrandNewPassword1", "current_password": PASSWORD, "full_name": "Ada"},
    )
    assert changed.status_code == 200
    assert changed.json()["full_name"] == "Ada"
    await login(client, owner.email, "BrandNewPassword1")
    old = await client.post("/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert_error(old, 401, "UNAUTHENTICATED")
    me = await client.get("/api/v1/users/me", headers=owner.headers)
    assert me.json()["full_name"] == "Ada"


async def test_duplicate_user_email_conflicts(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    answer = await client.post(
        "/api/v1/users",
        headers=owner.headers,
        json={"email": other_tenant.email, "password": PASSWORD},
    )
    assert_error(answer, 409, "CONFLICT")
