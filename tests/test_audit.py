"""The audit log: who changed what and when, failed logins, denials, reveals; never a secret."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import Account, Backend, add_user, assert_error, backstage
from tests.support.namespaces import make_ns


async def events(client: httpx.AsyncClient, who: Account, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/audit", headers=who.headers, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


async def test_an_admin_sees_who_changed_what_and_when(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "payments/production"))["id"]
    base = f"/api/v1/namespaces/{ns}/configs"
    created = await client.post(
        base,
        headers={**owner.headers, "X-Request-ID": "req-create-1"},
        json={"key": "db_password", "value": "TopSecret-4411", "is_secret": True},
    )
    assert created.status_code == 201
    await client.post(
        base, headers=owner.headers, json={"key": "timeout", "value": 5, "value_type": "number"}
    )
    await client.put(
        f"{base}/timeout", headers=owner.headers, json={"value": 10, "value_type": "number"}
    )
    await client.put(
        f"{base}/db_password",
        headers=owner.headers,
        json={"value": "Other-9922", "is_secret": True},
    )
    await client.delete(f"{base}/timeout", headers=owner.headers)

    log = await events(client, owner)
    actions = [e["action"] for e in log]
    assert actions[:6] == [
        "config.delete",
        "config.update",
        "config.update",
        "config.create",
        "config.create",
        "namespace.create",
    ]
    assert all(e["actor"] == f"user:{owner.user_id}" for e in log[:6])
    first = next(e for e in log if e["request_id"] == "req-create-1")
    assert first["action"] == "config.create" and first["namespace"] == "payments/production"
    assert (
        first["target"] == "db_password" and first["summary"]["changes"][0]["after"] == "********"
    )
    assert first["client"]  # the client address
    update = next(e for e in log if e["action"] == "config.update" and e["target"] == "timeout")
    change = update["summary"]["changes"][0]
    # Values are only ever stored encrypted: the log shows keyed fingerprints, not values.
    assert change["before"].startswith("fp:") and change["after"].startswith("fp:")
    assert change["before"] != change["after"]
    raw = (await client.get("/api/v1/audit", headers=owner.headers)).text
    assert "TopSecret" not in raw and "Other-9922" not in raw


async def test_failed_logins_denials_and_reveals_are_recorded(
    client: httpx.AsyncClient, owner: Account
) -> None:
    viewer = await add_user(client, owner, "vi@acme.example.com", "viewer")
    bad = await client.post(
        "/api/v1/auth/login", json={"email": viewer.email, "password": "not-the-password"}
    )
    assert_error(bad, 401, "UNAUTHENTICATED")
    denied = await client.post("/api/v1/namespaces", headers=viewer.headers, json={"name": "nope"})
    assert_error(denied, 403, "FORBIDDEN")
    ns = (await make_ns(client, owner, "payments"))["id"]
    await client.post(
        f"/api/v1/namespaces/{ns}/configs",
        headers=owner.headers,
        json={"key": "api_key", "value": "k-123456", "is_secret": True},
    )
    await client.get(
        f"/api/v1/namespaces/{ns}/configs/api_key", headers=owner.headers, params={"reveal": "true"}
    )

    failed = await events(client, owner, action="auth.login_failed")
    assert len(failed) == 1 and failed[0]["target"] == viewer.email
    assert failed[0]["summary"] == {"reason": "wrong password"}
    assert "not-the-password" not in str(failed)
    denial = await events(client, owner, action="permission.denied")
    assert [d["actor"] for d in denial] == [f"user:{viewer.user_id}"]
    revealed = await events(client, owner, action="config.reveal")
    assert revealed[0]["target"] == "api_key" and revealed[0]["namespace"] == "payments"
    logins = await events(client, owner, action="auth.login")
    assert {e["target"] for e in logins} >= {owner.email, viewer.email}


async def test_filters_and_cursor(client: httpx.AsyncClient, owner: Account) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    a = (await make_ns(client, owner, "a"))["id"]
    await make_ns(client, owner, "b")
    for i in range(5):
        await client.put(
            f"/api/v1/namespaces/{a}/configs/k{i}", headers=editor.headers, json={"value": str(i)}
        )
    by_editor = await events(client, owner, actor=f"user:{editor.user_id}", action="config.")
    assert len(by_editor) == 5
    assert {e["namespace"] for e in await events(client, owner, namespace="b")} == {"b"}
    everything = await events(client, owner, limit=200)
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/audit", headers=owner.headers, params=params)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [e["id"] for e in everything]
    newest = everything[0]["created_at"]
    assert await events(client, owner, since=newest.replace("+00:00", "Z")) != []
    assert await events(client, owner, until=everything[-1]["created_at"]) == []
    assert_error(
        await client.get("/api/v1/audit", headers=owner.headers, params={"since": "yesterday"}),
        422,
        "VALIDATION_ERROR",
    )


async def test_only_admins_read_their_own_tenants_log(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account
) -> None:
    editor = await add_user(client, owner, "ed@acme.example.com", "editor")
    assert_error(await client.get("/api/v1/audit", headers=editor.headers), 403, "FORBIDDEN")
    await make_ns(client, other_tenant, "their-secret-project")
    mine = await events(client, owner, limit=200)
    assert all(e["tenant_id"] == owner.tenant_id for e in mine)
    assert "their-secret-project" not in str(mine)


async def test_a_change_fails_when_its_audit_row_cannot_be_written(
    client: httpx.AsyncClient, owner: Account, app: Any, backend: Backend
) -> None:
    ns = (await make_ns(client, owner, "payments"))["id"]
    statements = {
        "sqlite": [
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit down'); END"
        ],
        "postgres": [
            "CREATE FUNCTION no_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit down'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION no_audit()",
        ],
        "mariadb": [
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit down'"
        ],
    }[backend.name]
    drops = {
        "sqlite": ["DROP TRIGGER no_audit"],
        "postgres": ["DROP TRIGGER no_audit ON audit_events", "DROP FUNCTION no_audit()"],
        "mariadb": ["DROP TRIGGER no_audit"],
    }
    async with backstage(app) as session:
        for statement in statements:
            await session.execute(text(statement))
    try:
        answer = await client.post(
            f"/api/v1/namespaces/{ns}/configs",
            headers=owner.headers,
            json={"key": "k", "value": "v"},
        )
        assert_error(answer, 500, "INTERNAL")
    finally:
        async with backstage(app) as session:
            for statement in drops[backend.name]:
                await session.execute(text(statement))
    assert_error(
        await client.get(f"/api/v1/namespaces/{ns}/configs/k", headers=owner.headers),
        404,
        "NOT_FOUND",
    )
    assert (await client.get(f"/api/v1/namespaces/{ns}", headers=owner.headers)).json()[
        "revision"
    ] == 0


async def test_every_way_of_revealing_a_secret_is_recorded_and_plain_reads_are_not(
    client: httpx.AsyncClient, owner: Account
) -> None:
    ns = (await make_ns(client, owner, "billing"))["id"]
    base = f"/api/v1/namespaces/{ns}"
    for value in ("Hidden-1111", "Hidden-2222"):
        answer = await client.put(
            f"{base}/configs/token", headers=owner.headers, json={"value": value, "is_secret": True}
        )
        assert answer.status_code in (200, 201), answer.text
    await client.put(f"{base}/configs/plain", headers=owner.headers, json={"value": "x"})
    reads: dict[str, tuple[str, dict[str, Any]]] = {
        "history": (f"{base}/configs/token/history", {}),
        "snapshot at revision 2": (f"{base}/revisions/2", {}),
        "diff 1..2": (f"{base}/diff", {"from": 1, "to": 2}),
        "document at revision 3": (f"{base}/document", {}),
        "export": (f"{base}/export", {"format": "yaml"}),
    }
    for path, params in reads.values():  # masked reads: nothing to record
        answer = await client.get(path, headers=owner.headers, params=params)
        assert answer.status_code == 200, answer.text
        assert "Hidden-" not in answer.text
    assert await events(client, owner, action="config.reveal") == []

    for path, params in reads.values():
        answer = await client.get(path, headers=owner.headers, params={**params, "reveal": "true"})
        assert answer.status_code == 200, answer.text
        assert "Hidden-2222" in answer.text
    rolled = await client.post(
        f"{base}/rollback",
        headers=owner.headers,
        params={"dry_run": "true", "reveal": "true"},
        json={"revision": 1},
    )
    assert rolled.status_code == 200, rolled.text

    revealed = await events(client, owner, action="config.reveal")
    vias = sorted(e["summary"]["via"] for e in revealed)
    assert vias == sorted(
        [
            "history",
            "snapshot at revision 2",
            "diff 1..2",
            "document at revision 3",
            "document at revision 3",  # the export reads the same document
            "rollback to revision 1",
        ]
    )
    for event in revealed:
        assert event["summary"]["keys"] == ["token"] and event["target"] == "token"
        assert "Hidden-" not in str(event)
