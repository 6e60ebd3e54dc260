"""Roles per namespace pattern: users carry grants, and every permission check follows them."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Account, add_user, assert_error
from tests.support.grants import add_granted, audit_of, grant, put_grants
from tests.support.readpath import bearer, make_namespace, make_token, put_entry, read, set_entry

EDITOR_ON_PAYMENTS = [grant("viewer", "**"), grant("editor", "payments/**")]


async def test_an_editor_on_payments_writes_there_and_only_reads_elsewhere(
    client: httpx.AsyncClient, owner: Account
) -> None:
    staging = await make_namespace(client, owner, "payments/staging")
    orders = await make_namespace(client, owner, "orders/production")
    await set_entry(client, owner, orders, "db_password", "Hunter-2222", is_secret=True)
    dev = await add_granted(client, owner, "dev@acme.example.com", EDITOR_ON_PAYMENTS)

    me = (await client.get("/api/v1/users/me", headers=dev.headers)).json()
    assert me["grants"] == EDITOR_ON_PAYMENTS and me["role"] == "viewer"
    assert (await put_entry(client, dev.headers, staging, "pool", "5")).status_code == 201
    refused = assert_error(await put_entry(client, dev.headers, orders, "x", "y"), 403, "FORBIDDEN")
    assert "orders/production" in refused["message"]
    entry = f"/api/v1/namespaces/{orders}/configs/db_password"
    masked = await client.get(entry, headers=dev.headers)
    assert masked.status_code == 200 and masked.json()["value"] == "********"
    assert_error(
        await client.get(entry, headers=dev.headers, params={"reveal": "true"}), 403, "FORBIDDEN"
    )
    resolved = await client.get("/api/v1/config/orders/production", headers=dev.headers)
    assert resolved.status_code == 200 and resolved.json()["db_password"] == "********"


async def test_without_a_grant_on_a_namespace_there_is_no_access(
    client: httpx.AsyncClient, owner: Account
) -> None:
    payments = await make_namespace(client, owner, "payments/staging")
    orders = await make_namespace(client, owner, "orders/production")
    dev = await add_granted(
        client, owner, "only@acme.example.com", [grant("editor", "payments/**")]
    )
    listed = (await client.get("/api/v1/namespaces", headers=dev.headers)).json()["items"]
    assert [ns["name"] for ns in listed] == ["payments/staging"]
    assert (await client.get(f"/api/v1/namespaces/{payments}", headers=dev.headers)).is_success
    assert_error(
        await client.get(f"/api/v1/namespaces/{orders}", headers=dev.headers), 403, "FORBIDDEN"
    )
    assert_error(
        await client.get("/api/v1/config/orders/production", headers=dev.headers), 403, "FORBIDDEN"
    )


async def test_replacing_grants_takes_effect_on_the_next_request_and_is_audited(
    client: httpx.AsyncClient, owner: Account
) -> None:
    staging = await make_namespace(client, owner, "payments/staging")
    dev = await add_granted(client, owner, "dev@acme.example.com", EDITOR_ON_PAYMENTS)
    assert (await put_entry(client, dev.headers, staging, "a", "1")).status_code == 201

    replaced = await put_grants(client, owner, dev.user_id, [grant("viewer", "**")])
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["grants"] == [grant("viewer", "**")]
    assert_error(await put_entry(client, dev.headers, staging, "a", "2"), 403, "FORBIDDEN")

    [event] = await audit_of(client, owner, "user.grants")
    assert event["target"] == "dev@acme.example.com"
    assert event["summary"] == {
        "before": {"grants": EDITOR_ON_PAYMENTS},
        "after": {"grants": [grant("viewer", "**")]},
    }
    # The same grants again change nothing and write no audit row.
    assert (await put_grants(client, owner, dev.user_id, [grant("viewer", "**")])).is_success
    assert len(await audit_of(client, owner, "user.grants")) == 1


async def test_the_tenant_role_is_the_grant_on_everything(
    client: httpx.AsyncClient, owner: Account
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    user = (await client.get(f"/api/v1/users/{editor.user_id}", headers=owner.headers)).json()
    assert user["grants"] == [grant("editor", "**")]
    await put_grants(
        client, owner, editor.user_id, [grant("editor", "**"), grant("admin", "payments/**")]
    )
    promoted = await client.patch(
        f"/api/v1/users/{editor.user_id}", headers=owner.headers, json={"role": "admin"}
    )
    assert promoted.json()["role"] == "admin"
    assert promoted.json()["grants"] == [grant("admin", "**"), grant("admin", "payments/**")]
    # Users and the audit log follow the tenant role: an admin of payments/** alone is no admin.
    payments_admin = await add_granted(
        client, owner, "pa@acme.example.com", [grant("admin", "payments/**")]
    )
    assert_error(
        await client.get("/api/v1/users", headers=payments_admin.headers), 403, "FORBIDDEN"
    )


async def test_an_admin_of_a_pattern_manages_its_namespaces_and_their_rules(
    client: httpx.AsyncClient, owner: Account
) -> None:
    orders = await make_namespace(client, owner, "orders/production")
    admin = await add_granted(
        client, owner, "pa@acme.example.com", [grant("viewer", "**"), grant("admin", "payments/**")]
    )
    made = await client.post(
        "/api/v1/namespaces", headers=admin.headers, json={"name": "payments/eu"}
    )
    assert made.status_code == 201, made.text
    assert_error(
        await client.post("/api/v1/namespaces", headers=admin.headers, json={"name": "orders/eu"}),
        403,
        "FORBIDDEN",
    )
    ns = made.json()["id"]
    base = f"/api/v1/namespaces/{ns}/configs/pool"
    body = {"value": 5, "value_type": "number", "validation_schema": {"max_value": 10}}
    assert (await client.put(base, headers=admin.headers, json=body)).status_code == 201
    body["validation_schema"] = {"max_value": 100}
    assert (await client.put(base, headers=admin.headers, json=body)).status_code == 200
    assert_error(
        await client.delete(f"/api/v1/namespaces/{orders}", headers=admin.headers),
        403,
        "FORBIDDEN",
    )


async def test_an_editor_of_a_pattern_changes_values_but_not_rules(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = await make_namespace(client, owner, "payments/staging")
    base = f"/api/v1/namespaces/{ns}/configs/pool"
    body = {"value": 5, "value_type": "number", "validation_schema": {"max_value": 10}}
    assert (await client.put(base, headers=owner.headers, json=body)).status_code == 201
    dev = await add_granted(client, owner, "dev@acme.example.com", EDITOR_ON_PAYMENTS)
    assert (await client.put(base, headers=dev.headers, json={**body, "value": 7})).is_success
    refused = assert_error(
        await client.put(
            base, headers=dev.headers, json={**body, "validation_schema": {"max_value": 99}}
        ),
        403,
        "FORBIDDEN",
    )
    assert "payments/staging" in refused["message"]


async def test_a_users_token_is_no_wider_than_their_grants(
    client: httpx.AsyncClient, owner: Account
) -> None:
    staging = await make_namespace(client, owner, "payments/staging")
    orders = await make_namespace(client, owner, "orders/production")
    dev = await add_granted(client, owner, "dev@acme.example.com", EDITOR_ON_PAYMENTS)
    writer = [{"namespaces": "payments/*", "permissions": ["read", "write", "secrets"]}]
    token = bearer((await make_token(client, dev, writer))["token"])
    assert (await put_entry(client, token, staging, "pool", "5")).status_code == 201

    wide = [{"namespaces": "**", "permissions": ["read", "write"]}]
    refused = assert_error(
        await client.post(
            "/api/v1/tokens", headers=dev.headers, json={"name": "w", "scopes": wide}
        ),
        403,
        "FORBIDDEN",
    )
    assert refused["details"] == {"permission": "write", "namespaces": "**"}

    # A token minted while the grants allowed it stops writing when they shrink.
    everything = bearer((await make_token(client, dev, read("**"), name="r"))["token"])
    assert (await client.get(f"/api/v1/namespaces/{orders}", headers=everything)).is_success
    await put_grants(client, owner, dev.user_id, [grant("editor", "payments/**")])
    assert_error(await put_entry(client, token, orders, "x", "y"), 403, "FORBIDDEN")
    assert_error(
        await client.get(f"/api/v1/namespaces/{orders}", headers=everything), 403, "FORBIDDEN"
    )
    assert (await client.get(f"/api/v1/namespaces/{staging}", headers=everything)).is_success
    await put_grants(client, owner, dev.user_id, [grant("viewer", "**")])
    assert_error(await put_entry(client, token, staging, "pool", "6"), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("grants", "field"),
    [
        ([grant("owner", "payments/**")], "owner"),
        ([grant("editor", "Payments/**")], "pattern"),
        ([grant("boss", "**")], "role"),
        ([{"role": "viewer"}], "namespaces"),
        ([{"role": "viewer", "namespaces": "**", "extra": 1}], "extra"),
    ],
)
async def test_bad_grants_are_refused_with_a_clear_422(
    client: httpx.AsyncClient, owner: Account, grants: list[dict[str, object]], field: str
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    answer = await client.put(
        f"/api/v1/users/{editor.user_id}/grants", headers=owner.headers, json={"grants": grants}
    )
    error = assert_error(answer, 422, "VALIDATION_ERROR")
    assert "grants" in error["message"]
    both = await client.post(
        "/api/v1/users",
        headers=owner.headers,
        json={
            "email": "both@acme.example.com",
            "password": "SecurePassword123",
            "role": "viewer",
            "grants": [grant("viewer", "**")],
        },
    )
    assert "either role or grants" in assert_error(both, 422, "VALIDATION_ERROR")["message"]


async def test_nobody_grants_above_their_own_role_nor_demotes_the_last_owner(
    client: httpx.AsyncClient, owner: Account
) -> None:
    admin = await add_user(client, owner, "admin@acme.example.com", "admin")
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    refused = assert_error(
        await put_grants(client, admin, editor.user_id, [grant("owner", "**")]), 403, "FORBIDDEN"
    )
    assert "owner" in refused["message"]
    assert_error(
        await put_grants(client, owner, owner.user_id, [grant("admin", "**")]), 409, "CONFLICT"
    )
    assert_error(
        await put_grants(client, editor, admin.user_id, [grant("viewer", "**")]), 403, "FORBIDDEN"
    )


async def test_another_tenants_user_is_not_found(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    assert_error(
        await put_grants(client, other_tenant, editor.user_id, [grant("viewer", "**")]),
        404,
        "NOT_FOUND",
    )
