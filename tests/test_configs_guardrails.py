"""Guardrails are not self-service: editors set values within the rules; changing an existing
entry's type, validation schema or secret flag needs an admin, on every write path."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Account, add_user, assert_error
from tests.support.configs import POOL, SECRET, entry, routed
from tests.support.readpath import bearer, make_token, read_write
from tests.support.revisions import API, new_namespace


@pytest.fixture
async def editor(client: httpx.AsyncClient, owner: Account) -> Account:
    return await add_user(client, owner, "ed@acme.example.com", "editor")


async def seeded(client: httpx.AsyncClient, owner: Account) -> str:
    ns = await new_namespace(client, owner)
    for key, body in (("db_password", SECRET), ("pool", POOL)):
        created = await client.put(entry(ns, key), headers=owner.headers, json=body)
        assert created.status_code == 201, created.text
    return ns


async def read(client: httpx.AsyncClient, owner: Account, ns: str, key: str) -> dict[str, Any]:
    answer = await client.get(entry(ns, key), headers=owner.headers, params={"reveal": "true"})
    return answer.json()  # type: ignore[no-any-return]


async def revision(client: httpx.AsyncClient, owner: Account, ns: str) -> int:
    return int(
        (await client.get(f"{API}/namespaces/{ns}", headers=owner.headers)).json()["revision"]
    )


@pytest.mark.parametrize("path", ["fast", "route"])
async def test_an_editor_cannot_raise_a_limit_to_save_a_value_past_it(
    client: httpx.AsyncClient, owner: Account, editor: Account, path: str
) -> None:
    ns = await seeded(client, owner)
    target = ns if path == "fast" else routed(ns)
    before = await revision(client, owner, ns)
    raised = await client.put(
        entry(target, "pool"),
        headers=editor.headers,
        json={**POOL, "value": 50_000, "validation_schema": {"min_value": 1, "max_value": 100_000}},
    )
    error = assert_error(raised, 403, "FORBIDDEN")
    assert "validation_schema of pool" in error["message"] and "admin" in error["message"]
    assert error["details"]["keys"] == {"pool": ["validation_schema"]}
    body: dict[str, Any]
    for method, body, field in (
        ("PATCH", {"value_type": "string", "value": "20"}, "value_type"),
        ("PATCH", {"is_secret": False}, "is_secret"),
        ("PUT", {"value": "new-password-1", "is_secret": False}, "is_secret"),
        ("PATCH", {"validation_schema": None}, "validation_schema"),
    ):
        key = "db_password" if field == "is_secret" else "pool"
        refused = await client.request(
            method, entry(target, key), headers=editor.headers, json=body
        )
        assert field in assert_error(refused, 403, "FORBIDDEN")["message"], (method, body)
    assert await revision(client, owner, ns) == before
    assert (await read(client, owner, ns, "pool"))["value"] == 10
    assert (await read(client, owner, ns, "db_password"))["is_secret"] is True
    denied = await client.get(
        f"{API}/audit", headers=owner.headers, params={"action": "permission.denied"}
    )
    assert len(denied.json()["items"]) == 5

    # Values within the rules, the rules sent unchanged, a description: all an editor's.
    for body in (
        {"value": 500},
        {**POOL, "value": 600},
        {"value": 700, "description": "connections per replica"},
    ):
        saved = await client.put(entry(target, "pool"), headers=editor.headers, json=body)
        assert saved.status_code == 200, saved.text
    # New keys come with whatever rules their author gives them.
    created = await client.put(
        entry(target, "timeout"),
        headers=editor.headers,
        json={"value": 5, "value_type": "number", "validation_schema": {"max_value": 60}},
    )
    assert created.status_code == 201, created.text
    posted = await client.post(
        entry(target),
        headers=editor.headers,
        json={"key": "api_key", "value": "k", "is_secret": True},
    )
    assert posted.status_code == 201, posted.text
    # An admin changes the rules.
    raised = await client.put(
        entry(target, "pool"),
        headers=owner.headers,
        json={"value": 50_000, "validation_schema": {"max_value": 100_000}},
    )
    assert raised.status_code == 200, raised.text


async def test_tokens_change_values_never_rules(client: httpx.AsyncClient, owner: Account) -> None:
    ns = await seeded(client, owner)
    token = (await make_token(client, owner, read_write("payments/*")))["token"]
    refused = await client.patch(
        entry(ns, "pool"), headers=bearer(token), json={"validation_schema": None}
    )
    assert "API tokens cannot" in assert_error(refused, 403, "FORBIDDEN")["message"]
    rotated = await client.put(
        entry(ns, "db_password"), headers=bearer(token), json={"value": "rotated-by-ci"}
    )
    assert rotated.status_code == 200 and rotated.json()["is_secret"] is True


async def test_documents_and_imports_keep_rules_and_refuse_editors_changing_them(
    client: httpx.AsyncClient, owner: Account, editor: Account
) -> None:
    ns = await seeded(client, owner)
    document = f"{API}/namespaces/{ns}/document"
    # Left out, the settings stay: the secret stays secret, the pool a number with its schema.
    kept = await client.put(
        document,
        headers=editor.headers,
        json={
            "entries": [{"key": "db_password", "value": "doc-pw-123"}, {"key": "pool", "value": 30}]
        },
    )
    assert kept.status_code == 200, kept.text
    password = await read(client, owner, ns, "db_password")
    assert password["is_secret"] is True and password["value"] == "doc-pw-123"
    pool = await read(client, owner, ns, "pool")
    assert pool["value_type"] == "number" and pool["validation_schema"] == POOL["validation_schema"]

    before = await revision(client, owner, ns)
    unsecret = {
        "entries": [
            {"key": "db_password", "value": "doc-pw-123", "is_secret": False},
            {"key": "pool", "value": 30},
        ]
    }
    for params in ({}, {"dry_run": "true"}):
        refused = await client.put(document, headers=editor.headers, json=unsecret, params=params)
        assert "is_secret of db_password" in assert_error(refused, 403, "FORBIDDEN")["message"]
    imported = await client.post(
        f"{API}/namespaces/{ns}/import",
        headers={**editor.headers, "Content-Type": "application/json"},
        json={"entries": [{"key": "pool", "value": 30, "value_type": "string"}]},
        params={"mode": "merge"},
    )
    assert "value_type of pool" in assert_error(imported, 403, "FORBIDDEN")["message"]
    assert await revision(client, owner, ns) == before

    # An env file carries no secret flag: the secret stays one.
    env = await client.post(
        f"{API}/namespaces/{ns}/import",
        headers={**editor.headers, "Content-Type": "text/plain"},
        content=b"DB_PASSWORD=from-env-file\nPOOL=40\n",
        params={"format": "env", "mode": "merge"},
    )
    assert env.status_code == 200, env.text
    password = await read(client, owner, ns, "db_password")
    assert password["is_secret"] is True and password["value"] == "from-env-file"
    assert (await read(client, owner, ns, "pool"))["value"] == 40

    done = await client.put(document, headers=owner.headers, json=unsecret)
    assert done.status_code == 200, done.text
    assert (await read(client, owner, ns, "db_password"))["is_secret"] is False
    batch = await client.get(
        f"{API}/audit", headers=owner.headers, params={"action": "config.batch"}
    )
    latest = batch.json()["items"][0]["summary"]
    assert latest["unsecret"] == ["db_password"]
    changed = {c["key"]: c for c in latest["changes"]}
    assert changed["db_password"]["secret"] == "removed"
    assert changed["db_password"]["after"] == "********"
    assert "secret" not in changed["pool"]


async def test_rolling_back_to_other_rules_needs_an_admin(
    client: httpx.AsyncClient, owner: Account, editor: Account
) -> None:
    ns = await seeded(client, owner)  # revision 2: pool at version 1, max_value 1000
    raised = await client.put(
        entry(ns, "pool"),
        headers=owner.headers,
        json={"value": 10, "validation_schema": {"min_value": 1, "max_value": 20}},
    )
    assert raised.status_code == 200
    back = await client.post(
        f"{entry(ns, 'pool')}/rollback", headers=editor.headers, json={"version": 1}
    )
    assert "validation_schema of pool" in assert_error(back, 403, "FORBIDDEN")["message"]
    whole = await client.post(
        f"{API}/namespaces/{ns}/rollback", headers=editor.headers, json={"revision": 2}
    )
    assert_error(whole, 403, "FORBIDDEN")
    # A value-only rollback is an editor's.
    await client.put(entry(ns, "pool"), headers=owner.headers, json={"value": 15})
    value_only = await client.post(
        f"{entry(ns, 'pool')}/rollback", headers=editor.headers, json={"version": 2}
    )
    assert value_only.status_code == 200, value_only.text
    assert value_only.json()["value"] == 10
    admin = await client.post(
        f"{entry(ns, 'pool')}/rollback", headers=owner.headers, json={"version": 1}
    )
    assert admin.status_code == 200 and admin.json()["validation_schema"]["max_value"] == 1000
