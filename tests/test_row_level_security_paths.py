"""The paths that act across tenants under PostgreSQL row-level security, and those that
bind a tenant of their own (tests/test_row_level_security.py has the wall itself).

Every test here runs on SQLite too: the paths must behave alike on each backend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import PASSWORD, Account, add_user, assert_error, login
from tests.support.group_commit import held, queued, taken_up
from tests.support.readpath import make_namespace, set_entry


async def test_a_denied_write_on_the_fast_path_still_leaves_its_audit_row(
    client: httpx.AsyncClient, owner: Account
) -> None:
    """The single-entry write path answers a known principal without a request session; the
    trace of its refusal is written in a session of its own, bound to the principal's tenant."""
    viewer = await add_user(client, owner, "vi@acme.example.com", "viewer")
    namespace = await make_namespace(client, owner, "payments")
    entry = f"/api/v1/namespaces/{namespace}/configs/region"
    for _ in range(2):  # the second one comes from a principal the caches know
        denied = await client.put(entry, headers=viewer.headers, json={"value": "eu"})
        assert_error(denied, 403, "FORBIDDEN")
    audit = await client.get(
        "/api/v1/audit", headers=owner.headers, params={"action": "permission.denied"}
    )
    assert [e["actor"] for e in audit.json()["items"]] == [f"user:{viewer.user_id}"] * 2


# Every path that may see or write several tenants' rows, by module and reason. A new one is a
# decision: add it here and to docs/deploy.md ("Database roles and row-level security").
ACROSS_TENANTS = {
    ("konfig.auth.principal", "f'superuser: {reason}'"),  # superuser_scope, below
    ("konfig.audit.service", "the audit log of every tenant"),
    ("konfig.auth.service", "register: a new tenant"),
    ("konfig.auth.service", "login: a user by email, before the tenant is known"),
    ("konfig.auth.service", "audit: a failed login of no tenant"),
    ("konfig.backups.scheduler", "backups: which tenants are due"),
    ("konfig.cli.backups", "operator: a tenant by its name"),
    ("konfig.cli.superuser", "create-superuser"),
    ("konfig.revisions.tree", "operator: a tenant by its name"),
    ("konfig.configs.rotation", "key rotation: every tenant's values"),
    ("konfig.configs.rotation", "key rotation: every tenant's SSO client secret"),
    ("konfig.sso.logins", "sso: a tenant by name, before anyone signs in"),
    ("konfig.sso.logins", "sso: the sign-in a callback names"),
    ("konfig.sso.logins", "sso: an email is unique across tenants"),
    ("konfig.sso.logins", "audit: a refused sign-in"),
    ("konfig.analytics.service", "usage analytics, of every tenant"),
    ("konfig.analytics.service", "usage analytics roll-up, of every tenant"),
    ("konfig.analytics.service", "usage analytics retention, of every tenant"),
    ("konfig.delivery.wiring", "read path: revisions of every tenant"),
    ("konfig.tokens.cache", "api token: found by its hash"),
    ("konfig.tokens.cache", "api tokens: last use, of every tenant"),
    ("konfig.users.service", "users: an email is unique across tenants"),
    ("konfig.users.service", "a user of any tenant"),
    ("konfig.users.service", "the users of every tenant"),
    ("konfig.users.service", "change a user of any tenant"),
    ("konfig.users.service", "remove a user of any tenant"),
    ("konfig.webhooks.worker", "webhooks: the outbox and deliveries of every tenant"),
}


def test_the_paths_that_act_across_tenants_are_the_named_ones(repo_root: Path) -> None:
    import ast

    names = {"across_tenants", "connection_across_tenants", "superuser_scope"}
    found = set()
    source = repo_root / "src"
    for path in sorted((source / "konfig").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in names:
                module = path.relative_to(source).with_suffix("").as_posix().replace("/", ".")
                reason = node.args[-1]
                said = reason.value if isinstance(reason, ast.Constant) else ast.unparse(reason)
                found.add((module, said))
    assert found == ACROSS_TENANTS


async def test_a_superuser_administers_every_tenant(
    client: httpx.AsyncClient, settings: Any, owner: Account, other_tenant: Account
) -> None:
    """Superusers act across tenants by name (``superuser_scope``): on PostgreSQL row-level
    security would otherwise show them their own tenant only."""
    from konfig.cli.superuser import create

    await create(settings, email="root@konfig.example.com", password=PASSWORD, tenant="platform")
    root = (await login(client, "root@konfig.example.com"))["access_token"]
    headers = {"Authorization": f"Bearer {root}"}
    member = await add_user(client, other_tenant, "dev@globex.example.com", "editor")

    listed = (await client.get("/api/v1/users?limit=100", headers=headers)).json()["items"]
    assert {owner.email, other_tenant.email, member.email} <= {u["email"] for u in listed}
    one = await client.get(f"/api/v1/users/{member.user_id}", headers=headers)
    assert one.status_code == 200, one.text
    changed = await client.patch(
        f"/api/v1/users/{member.user_id}", headers=headers, json={"full_name": "Renamed"}
    )
    assert changed.status_code == 200 and changed.json()["full_name"] == "Renamed"
    audit = (await client.get("/api/v1/audit?limit=200", headers=headers)).json()["items"]
    assert {owner.tenant_id, other_tenant.tenant_id} <= {e["tenant_id"] for e in audit}
    gone = await client.delete(f"/api/v1/users/{member.user_id}", headers=headers)
    assert gone.status_code == 204, gone.text
    # An owner of a tenant is no superuser: the other tenant's users stay out of sight.
    theirs = await client.get(f"/api/v1/users/{other_tenant.user_id}", headers=owner.headers)
    assert_error(theirs, 404, "NOT_FOUND")


async def test_one_group_commit_writes_for_several_tenants_each_in_its_own(
    client: httpx.AsyncClient, owner: Account, other_tenant: Account, app: Any
) -> None:
    """The group commit binds the tenants of its batch (one statement): writes of two tenants
    batched together both commit, each into its own tenant's namespace."""
    ours = await make_namespace(client, owner, "payments")
    theirs = await make_namespace(client, other_tenant, "payments")
    writer = app.state.entry_writer
    for account, namespace in ((owner, ours), (other_tenant, theirs)):  # principals now cached
        await set_entry(client, account, namespace, "warm", "up")
    before = writer.batches

    def put(account: Account, namespace: str, value: str) -> Any:
        path = f"/api/v1/namespaces/{namespace}/configs/region"
        return asyncio.create_task(client.put(path, headers=account.headers, json={"value": value}))

    async with held(app, owner, ours):
        tasks = [put(owner, ours, "eu-1")]
        await taken_up(writer)
        tasks += [put(other_tenant, theirs, "us-1"), put(owner, ours, "eu-2")]
        await queued(tasks, writer)
    answers = [await task for task in tasks]

    assert writer.batches == before + 2  # the first alone, then both tenants' writes together
    assert [a.status_code for a in answers] == [201, 201, 200], [a.text for a in answers]
    for account, namespace, value in ((owner, ours, "eu-2"), (other_tenant, theirs, "us-1")):
        read = await client.get(
            f"/api/v1/namespaces/{namespace}/configs/region", headers=account.headers
        )
        assert read.json()["value"] == value
