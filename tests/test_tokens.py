"""Service accounts and API tokens: format, scopes, revocation, ownership, tenant isolation."""

from __future__ import annotations

import asyncio
import re
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from konfig.app import create_app
from konfig.settings import Settings
from tests.conftest import Account, add_user, assert_error
from tests.support.readpath import (
    bearer,
    make_namespace,
    make_token,
    put_entry,
    read,
    read_write,
    service_account,
    set_entry,
)

TOKEN_FORMAT = re.compile(r"^kfg_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def crc32_base62(text: str) -> str:
    number, digits = zlib.crc32(text.encode()), ""
    while number:
        number, digit = divmod(number, 62)
        digits = BASE62[digit] + digits
    return digits.rjust(6, "0")


async def test_a_token_is_shown_once_in_a_scannable_format(
    client: httpx.AsyncClient, owner: Account
) -> None:
    account_id = await service_account(client, owner, "billing-worker")
    created = await make_token(
        client, owner, read("payments/*"), service_account_id=account_id, name="billing"
    )
    secret = created["token"]
    match = TOKEN_FORMAT.match(secret)
    assert match, secret
    assert crc32_base62(match.group(1)) == match.group(2)
    assert created["owner"] == "service_account" and created["status"] == "active"
    assert created["scopes"] == read("payments/*")
    assert created["last_used_at"] is None
    again = await client.get(f"/api/v1/tokens/{created['id']}", headers=owner.headers)
    assert again.status_code == 200
    assert "token" not in again.json() and secret not in again.text
    assert again.json()["hint"].startswith("kfg_") and again.json()["hint"] != secret
    listed = await client.get("/api/v1/tokens", headers=owner.headers)
    assert [t["id"] for t in listed.json()["items"]] == [created["id"]]
    assert secret not in listed.text


async def test_a_token_reads_and_writes_only_what_its_scopes_allow(
    client: httpx.AsyncClient, owner: Account
) -> None:
    production = await make_namespace(client, owner, "payments/production")
    other = await make_namespace(client, owner, "orders/production")
    await set_entry(client, owner, production, "db_host", "db.internal")
    account_id = await service_account(client, owner, "payments-deployer")
    scopes = [
        {"namespaces": "payments/*", "permissions": ["read", "write"]},
        {"namespaces": "orders/**", "permissions": ["read"]},
    ]
    token = bearer(
        (await make_token(client, owner, scopes, service_account_id=account_id))["token"]
    )

    listed = await client.get(f"/api/v1/namespaces/{production}/configs", headers=token)
    assert listed.status_code == 200, listed.text
    assert [e["key"] for e in listed.json()["items"]] == ["db_host"]
    assert (
        await put_entry(client, token, production, "pool", 5, value_type="number")
    ).status_code == 201
    assert (await client.get(f"/api/v1/namespaces/{other}", headers=token)).status_code == 200
    assert_error(await put_entry(client, token, other, "x", "y"), 403, "FORBIDDEN")
    names = [
        ns["name"] for ns in (await client.get("/api/v1/namespaces", headers=token)).json()["items"]
    ]
    assert names == ["orders/production", "payments/production"]

    narrow = bearer(
        (await make_token(client, owner, read("orders/*"), service_account_id=account_id))["token"]
    )
    assert_error(
        await client.get(f"/api/v1/namespaces/{production}", headers=narrow), 403, "FORBIDDEN"
    )
    assert_error(
        await client.get(f"/api/v1/namespaces/{production}/configs", headers=narrow),
        403,
        "FORBIDDEN",
    )
    assert (await client.get("/api/v1/namespaces", headers=narrow)).json()["items"][0]["name"] == (
        "orders/production"
    )


async def test_tokens_are_refused_on_endpoints_meant_for_people(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await make_namespace(client, owner, "payments")
    account_id = await service_account(client, owner, "ci")
    token = bearer(
        (await make_token(client, owner, read_write("**"), service_account_id=account_id))["token"]
    )
    refused = [
        await client.get("/api/v1/users", headers=token),
        await client.post(
            "/api/v1/users",
            headers=token,
            json={"email": "x@acme.example.com", "password": "x" * 12},
        ),
        await client.get("/api/v1/users/me", headers=token),
        await client.get("/api/v1/auth/me", headers=token),
        await client.post("/api/v1/auth/logout", headers=token),
        await client.post("/api/v1/namespaces", headers=token, json={"name": "new"}),
        await client.get("/api/v1/tokens", headers=token),
        await client.post(
            "/api/v1/tokens", headers=token, json={"name": "t", "scopes": read("**")}
        ),
        await client.get("/api/v1/service-accounts", headers=token),
    ]
    for answer in refused:
        assert_error(answer, 403, "FORBIDDEN")


async def test_bad_tokens_are_unauthenticated(client: httpx.AsyncClient, owner: Account) -> None:
    account_id = await service_account(client, owner, "svc")
    secret = (await make_token(client, owner, read("**"), service_account_id=account_id))["token"]
    flipped = secret[:10] + ("A" if secret[10] != "A" else "B") + secret[11:]  # checksum fails
    unknown = "kfg_" + "0" * 43 + crc32_base62("0" * 43)  # well formed, never issued
    for bad in ("kfg_nonsense", flipped, unknown, secret + "x"):
        for url in ("/api/v1/namespaces", "/api/v1/config/payments"):
            error = assert_error(await client.get(url, headers=bearer(bad)), 401, "UNAUTHENTICATED")
            assert bad not in error["message"]


async def test_revocation_takes_effect_at_once_everywhere(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "payments")
    await set_entry(client, owner, namespace, "a", "1")
    account_id = await service_account(client, owner, "svc")
    created = await make_token(client, owner, read("**"), service_account_id=account_id)
    token = bearer(created["token"])
    assert (await client.get("/api/v1/config/payments", headers=token)).status_code == 200
    assert (await client.get(f"/api/v1/namespaces/{namespace}", headers=token)).status_code == 200

    revoked = await client.delete(f"/api/v1/tokens/{created['id']}", headers=owner.headers)
    assert revoked.status_code == 204
    for url in ("/api/v1/config/payments", f"/api/v1/namespaces/{namespace}"):
        error = assert_error(await client.get(url, headers=token), 401, "UNAUTHENTICATED")
        assert "revoked" in error["message"]
    shown = (await client.get(f"/api/v1/tokens/{created['id']}", headers=owner.headers)).json()
    assert shown["status"] == "revoked" and shown["revoked_at"]
    active = (await client.get("/api/v1/tokens", headers=owner.headers)).json()["items"]
    assert active == []
    everything = await client.get(
        "/api/v1/tokens", headers=owner.headers, params={"include_revoked": "true"}
    )
    assert [t["id"] for t in everything.json()["items"]] == [created["id"]]


async def test_deleting_a_service_account_ends_its_tokens(
    client: httpx.AsyncClient, owner: Account
) -> None:
    await make_namespace(client, owner, "payments")
    account_id = await service_account(client, owner, "svc")
    token = bearer(
        (await make_token(client, owner, read("**"), service_account_id=account_id))["token"]
    )
    assert (await client.get("/api/v1/config/payments", headers=token)).status_code == 200
    deleted = await client.delete(f"/api/v1/service-accounts/{account_id}", headers=owner.headers)
    assert deleted.status_code == 204
    assert_error(await client.get("/api/v1/config/payments", headers=token), 401, "UNAUTHENTICATED")
    assert_error(
        await client.get(f"/api/v1/service-accounts/{account_id}", headers=owner.headers),
        404,
        "NOT_FOUND",
    )


async def test_an_expired_token_stops_working(client: httpx.AsyncClient, owner: Account) -> None:
    await make_namespace(client, owner, "payments")
    account_id = await service_account(client, owner, "svc")
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    refused = await client.post(
        "/api/v1/tokens",
        headers=owner.headers,
        json={
            "name": "t",
            "scopes": read("**"),
            "service_account_id": account_id,
            "expires_at": past,
        },
    )
    assert_error(refused, 422, "VALIDATION_ERROR")
    naive = await client.post(
        "/api/v1/tokens",
        headers=owner.headers,
        json={"name": "t", "scopes": read("**"), "expires_at": "2099-01-01T00:00:00"},
    )
    assert_error(naive, 422, "VALIDATION_ERROR")

    soon = datetime.now(UTC) + timedelta(seconds=2)
    created = await make_token(
        client, owner, read("**"), service_account_id=account_id, expires_at=soon.isoformat()
    )
    token = bearer(created["token"])
    assert (await client.get("/api/v1/config/payments", headers=token)).status_code == 200
    while datetime.now(UTC) < soon + timedelta(milliseconds=50):
        await asyncio.sleep(0.1)
    for url in ("/api/v1/config/payments", "/api/v1/namespaces"):
        error = assert_error(await client.get(url, headers=token), 401, "UNAUTHENTICATED")
        assert "expired" in error["message"]
    shown = (await client.get(f"/api/v1/tokens/{created['id']}", headers=owner.headers)).json()
    assert shown["status"] == "expired"
    days = await make_token(
        client, owner, read("**"), service_account_id=account_id, expires_in_days=7
    )
    assert days["expires_at"] is not None


async def test_users_hold_tokens_no_wider_than_their_role(
    client: httpx.AsyncClient, owner: Account
) -> None:
    namespace = await make_namespace(client, owner, "payments")
    viewer = await add_user(client, owner, "viewer@acme.example.com", "viewer")
    editor = await add_user(client, owner, "editor@acme.example.com", "editor")

    assert_error(
        await client.post(
            "/api/v1/tokens", headers=viewer.headers, json={"name": "w", "scopes": read_write("**")}
        ),
        403,
        "FORBIDDEN",
    )
    account_id = await service_account(client, owner, "svc")
    assert_error(
        await client.post(
            "/api/v1/tokens",
            headers=editor.headers,
            json={"name": "w", "scopes": read("**"), "service_account_id": account_id},
        ),
        403,
        "FORBIDDEN",
    )
    mine = await make_token(client, viewer, read("**"))
    assert mine["owner"] == "user" and mine["user_id"] == viewer.user_id
    assert (
        await client.get("/api/v1/config/payments", headers=bearer(mine["token"]))
    ).status_code == 200

    writer = await make_token(client, editor, read_write("**"))
    writer_token = bearer(writer["token"])
    assert (await put_entry(client, writer_token, namespace, "k", "v")).status_code == 201

    # Each sees only their own tokens; the admin sees them all.
    seen = (await client.get("/api/v1/tokens", headers=viewer.headers)).json()["items"]
    assert [t["id"] for t in seen] == [mine["id"]]
    assert_error(
        await client.get(f"/api/v1/tokens/{writer['id']}", headers=viewer.headers), 404, "NOT_FOUND"
    )
    assert_error(
        await client.delete(f"/api/v1/tokens/{writer['id']}", headers=viewer.headers),
        404,
        "NOT_FOUND",
    )
    everyone = (await client.get("/api/v1/tokens", headers=owner.headers)).json()["items"]
    assert {t["id"] for t in everyone} == {mine["id"], writer["id"]}

    # Demoted to viewer: the editor's token cannot write any more; deactivated: it stops.
    demoted = await client.patch(
        f"/api/v1/users/{editor.user_id}", headers=owner.headers, json={"role": "viewer"}
    )
    assert demoted.status_code == 200
    assert_error(await put_entry(client, writer_token, namespace, "k", "w"), 403, "FORBIDDEN")
    assert (await client.get("/api/v1/config/payments", headers=writer_token)).status_code == 200
    deactivated = await client.patch(
        f"/api/v1/users/{editor.user_id}", headers=owner.headers, json={"is_active": False}
    )
    assert deactivated.status_code == 200
    assert_error(
        await client.get("/api/v1/config/payments", headers=writer_token), 401, "UNAUTHENTICATED"
    )


async def test_managing_service_accounts_needs_an_admin(
    client: httpx.AsyncClient, owner: Account
) -> None:
    editor = await add_user(client, owner, "editor@acme.example.com", "editor")
    assert_error(
        await client.post("/api/v1/service-accounts", headers=editor.headers, json={"name": "x"}),
        403,
        "FORBIDDEN",
    )
    assert_error(
        await client.get("/api/v1/service-accounts", headers=editor.headers), 403, "FORBIDDEN"
    )
    account_id = await service_account(client, owner, "svc")
    duplicate = await client.post(
        "/api/v1/service-accounts", headers=owner.headers, json={"name": "svc"}
    )
    assert_error(duplicate, 409, "CONFLICT")
    listed = await client.get("/api/v1/service-accounts", headers=owner.headers)
    assert [a["id"] for a in listed.json()["items"]] == [account_id]
    assert_error(
        await client.delete(f"/api/v1/service-accounts/{account_id}", headers=editor.headers),
        403,
        "FORBIDDEN",
    )


@pytest.mark.parametrize(
    "scopes",
    [
        [],
        [{"namespaces": "Payments/*", "permissions": ["read"]}],
        [{"namespaces": "payments/*", "permissions": []}],
        [{"namespaces": "payments/*", "permissions": ["admin"]}],
        [{"namespaces": "payments/*", "permissions": ["read", "read"]}],
        [{"namespaces": "payments//x", "permissions": ["read"]}],
        [{"namespaces": "payments/*", "permissions": ["read"], "extra": 1}],
    ],
)
async def test_bad_scopes_are_refused(
    client: httpx.AsyncClient, owner: Account, scopes: list[dict[str, Any]]
) -> None:
    answer = await client.post(
        "/api/v1/tokens", headers=owner.headers, json={"name": "t", "scopes": scopes}
    )
    assert_error(answer, 422, "VALIDATION_ERROR")


async def test_another_tenant_sees_nothing(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    theirs = await make_namespace(client, other_tenant, "payments")
    await set_entry(client, other_tenant, theirs, "secret", "theirs")
    account_id = await service_account(client, other_tenant, "svc")
    token = await make_token(client, other_tenant, read("**"), service_account_id=account_id)
    for method, url in (
        ("GET", f"/api/v1/tokens/{token['id']}"),
        ("DELETE", f"/api/v1/tokens/{token['id']}"),
        ("GET", f"/api/v1/service-accounts/{account_id}"),
        ("DELETE", f"/api/v1/service-accounts/{account_id}"),
    ):
        assert_error(await client.request(method, url, headers=owner.headers), 404, "NOT_FOUND")
    refused = await client.post(
        "/api/v1/tokens",
        headers=owner.headers,
        json={"name": "t", "scopes": read("**"), "service_account_id": account_id},
    )
    assert_error(refused, 404, "NOT_FOUND")
    assert (await client.get("/api/v1/tokens", headers=owner.headers)).json()["items"] == []
    # The other tenant's token still works: nothing above touched it.
    mine = await make_namespace(client, owner, "orders")
    other_token = bearer(token["token"])
    assert (await client.get("/api/v1/config/payments", headers=other_token)).status_code == 200
    assert_error(
        await client.get(f"/api/v1/namespaces/{mine}", headers=other_token), 404, "NOT_FOUND"
    )
    assert_error(await client.get("/api/v1/config/orders", headers=other_token), 404, "NOT_FOUND")


async def test_last_used_is_kept_without_a_write_per_request(
    client: httpx.AsyncClient, owner: Account, settings: Settings, tmp_path: Path
) -> None:
    await make_namespace(client, owner, "payments")
    account_id = await service_account(client, owner, "svc")
    created = await make_token(client, owner, read("**"), service_account_id=account_id)
    token = bearer(created["token"])
    before = datetime.now(UTC)

    # A second process on the same database serves the requests, then stops: its record of
    # the uses reaches the database when it flushes, not with each request.
    other = create_app(settings.model_copy(update={"token_usage_flush_seconds": 3600}))
    async with LifespanManager(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://replica.test"
        ) as replica:
            for _ in range(3):
                assert (
                    await replica.get("/api/v1/config/payments", headers=token)
                ).status_code == 200
            seen_there = (
                await replica.get(f"/api/v1/tokens/{created['id']}", headers=owner.headers)
            ).json()["last_used_at"]
            assert seen_there is not None
            stored = (
                await client.get(f"/api/v1/tokens/{created['id']}", headers=owner.headers)
            ).json()["last_used_at"]
            assert stored is None
    flushed = (await client.get(f"/api/v1/tokens/{created['id']}", headers=owner.headers)).json()
    assert flushed["last_used_at"] is not None
    assert datetime.fromisoformat(flushed["last_used_at"]) >= before - timedelta(seconds=1)
