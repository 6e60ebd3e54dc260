"""Namespaces: path names, includes without cycles, deletion guards, roles, tenant isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Account, add_user, assert_error
from tests.support.namespaces import make_ns


async def test_create_namespace_as_in_the_original_spec(
    client: httpx.AsyncClient, owner: Account
) -> None:
    created = await client.post(
        "/api/v1/namespaces",
        headers=owner.headers,
        json={"name": "production", "description": "Production environment configurations"},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["id"]
    assert body["revision"] == 0
    assert body["entry_count"] == 0
    read = await client.get(f"/api/v1/namespaces/{body['id']}", headers=owner.headers)
    assert read.json()["description"] == "Production environment configurations"


@pytest.mark.parametrize(
    "name",
    ["Payments", "payments/", "/payments", "pay ments", "payments//prod", "-x", "a" * 64, "ü"],
)
async def test_bad_names_are_refused(client: httpx.AsyncClient, owner: Account, name: str) -> None:
    answer = await client.post("/api/v1/namespaces", headers=owner.headers, json={"name": name})
    error = assert_error(answer, 422, "VALIDATION_ERROR")
    assert "namespace name" in error["message"]


async def test_duplicate_names_conflict(client: httpx.AsyncClient, owner: Account) -> None:
    await make_ns(client, owner, "payments/production")
    again = await client.post(
        "/api/v1/namespaces", headers=owner.headers, json={"name": "payments/production"}
    )
    assert_error(again, 409, "CONFLICT")


async def test_list_filters_by_prefix_and_paginates(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for name in [
        "payments",
        "payments/production",
        "payments/staging",
        "search/production",
        "pay_x",
    ]:
        await make_ns(client, owner, name)
    listed = await client.get(
        "/api/v1/namespaces", headers=owner.headers, params={"prefix": "payments"}
    )
    assert [n["name"] for n in listed.json()["items"]] == [
        "payments",
        "payments/production",
        "payments/staging",
    ]
    # '_' in a prefix is literal, not a LIKE wildcard
    literal = await client.get(
        "/api/v1/namespaces", headers=owner.headers, params={"prefix": "pay_"}
    )
    assert [n["name"] for n in literal.json()["items"]] == ["pay_x"]
    names, cursor = [], None
    while True:
        params: dict[str, int | str] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/namespaces", headers=owner.headers, params=params)).json()
        names += [n["name"] for n in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == sorted(names) and len(names) == 5


async def test_includes_must_exist_in_the_same_tenant(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    await make_ns(client, other_tenant, "shared/production")
    answer = await client.post(
        "/api/v1/namespaces",
        headers=owner.headers,
        json={"name": "payments", "includes": ["shared/production"]},
    )
    error = assert_error(answer, 422, "VALIDATION_ERROR")
    assert "shared/production" in error["message"]
    await make_ns(client, owner, "shared/production")
    made = await make_ns(client, owner, "payments", includes=["shared/production"])
    assert made["includes"] == ["shared/production"]


async def test_includes_may_not_form_a_cycle(client: httpx.AsyncClient, owner: Account) -> None:
    a = await make_ns(client, owner, "a")
    b = await make_ns(client, owner, "b", includes=["a"])
    await make_ns(client, owner, "c", includes=["b"])
    cycle = await client.patch(
        f"/api/v1/namespaces/{a['id']}", headers=owner.headers, json={"includes": ["c"]}
    )
    error = assert_error(cycle, 422, "VALIDATION_ERROR")
    assert "cycle" in error["message"] and "a → c → b → a" in error["message"]
    itself = await client.patch(
        f"/api/v1/namespaces/{b['id']}", headers=owner.headers, json={"includes": ["b"]}
    )
    assert_error(itself, 422, "VALIDATION_ERROR")
    unchanged = await client.get(f"/api/v1/namespaces/{a['id']}", headers=owner.headers)
    assert unchanged.json()["includes"] == []


async def test_deleting_a_namespace_with_entries_needs_force(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await make_ns(client, owner, "payments")
    entry = {"key": "timeout", "value": 5, "value_type": "number"}
    assert (
        await client.post(
            f"/api/v1/namespaces/{ns['id']}/configs", headers=owner.headers, json=entry
        )
    ).status_code == 201
    refused = await client.delete(f"/api/v1/namespaces/{ns['id']}", headers=owner.headers)
    error = assert_error(refused, 409, "CONFLICT")
    assert "force=true" in error["message"]
    forced = await client.delete(
        f"/api/v1/namespaces/{ns['id']}", headers=owner.headers, params={"force": "true"}
    )
    assert forced.status_code == 204
    assert_error(
        await client.get(f"/api/v1/namespaces/{ns['id']}", headers=owner.headers), 404, "NOT_FOUND"
    )


async def test_an_included_namespace_cannot_be_deleted(
    client: httpx.AsyncClient, owner: Account
) -> None:
    shared = await make_ns(client, owner, "shared")
    other = await make_ns(client, owner, "other")
    payments = await make_ns(client, owner, "payments", includes=["other", "shared"])
    await make_ns(client, owner, "orders", includes=["shared"])
    await make_ns(client, owner, "billing", includes=["other"])
    refused = await client.delete(f"/api/v1/namespaces/{shared['id']}", headers=owner.headers)
    message = assert_error(refused, 409, "CONFLICT")["message"]
    assert "included by orders, payments:" in message and "billing" not in message
    for includer, kept in ((payments, ["other"]), (await ns_named(client, owner, "orders"), [])):
        patched = await client.patch(
            f"/api/v1/namespaces/{includer['id']}", headers=owner.headers, json={"includes": kept}
        )
        assert patched.status_code == 200 and patched.json()["includes"] == kept
    deleted = await client.delete(f"/api/v1/namespaces/{shared['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    still = await client.delete(f"/api/v1/namespaces/{other['id']}", headers=owner.headers)
    assert "included by billing, payments:" in assert_error(still, 409, "CONFLICT")["message"]


async def ns_named(client: httpx.AsyncClient, owner: Account, name: str) -> dict[str, Any]:
    listed = await client.get("/api/v1/namespaces", headers=owner.headers, params={"prefix": name})
    (found,) = [ns for ns in listed.json()["items"] if ns["name"] == name]
    return dict(found)


async def test_roles_admins_manage_viewers_read(client: httpx.AsyncClient, owner: Account) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    viewer = await add_user(client, owner, "vi@acme.example.com", "viewer")
    ns = await make_ns(client, owner, "payments")
    for who in (editor, viewer):
        made = await client.post("/api/v1/namespaces", headers=who.headers, json={"name": "x"})
        assert_error(made, 403, "FORBIDDEN")
        patched = await client.patch(
            f"/api/v1/namespaces/{ns['id']}", headers=who.headers, json={"description": "d"}
        )
        assert_error(patched, 403, "FORBIDDEN")
        assert_error(
            await client.delete(f"/api/v1/namespaces/{ns['id']}", headers=who.headers),
            403,
            "FORBIDDEN",
        )
        assert (
            await client.get(f"/api/v1/namespaces/{ns['id']}", headers=who.headers)
        ).status_code == 200
        assert (
            len((await client.get("/api/v1/namespaces", headers=who.headers)).json()["items"]) == 1
        )


async def test_another_tenants_namespace_is_not_found(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    theirs = await make_ns(client, other_tenant, "secret-project")
    path = f"/api/v1/namespaces/{theirs['id']}"
    assert_error(await client.get(path, headers=owner.headers), 404, "NOT_FOUND")
    assert_error(
        await client.patch(path, headers=owner.headers, json={"description": "x"}), 404, "NOT_FOUND"
    )
    assert_error(await client.delete(path, headers=owner.headers), 404, "NOT_FOUND")
    listed = await client.get("/api/v1/namespaces", headers=owner.headers)
    assert listed.json()["items"] == []
    # The same name is free in another tenant.
    await make_ns(client, owner, "secret-project")
