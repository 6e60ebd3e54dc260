"""PostgreSQL row-level security: the second wall between tenants (migration 0006).

The suite's PostgreSQL backend serves as an app role that owns no table and has no BYPASSRLS
(tests/conftest.py), so every PostgreSQL test runs under the policies. Here: every tenant-owned
table has them; the app role cannot see or touch another tenant's rows even in SQL that forgets
the tenant; and with the application's own tenant filters sabotaged, a request of tenant B
still gets none of tenant A's rows (while a role that skips row-level security gets them: the
sabotage is real).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import Column, text
from sqlalchemy.dialects.postgresql.base import PGCompiler
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from konfig.app import create_app
from konfig.db.engine import make_engine
from konfig.db.models import Base
from konfig.db.roles import role_problems, tenant_owned
from tests.conftest import (
    PASSWORD,
    Account,
    Backend,
    add_user,
    assert_error,
    login,
    make_settings,
    register,
)
from tests.readpath_helpers import make_namespace, make_token, read, service_account, set_entry

TABLES = tenant_owned(Base.metadata)


@pytest.fixture
def postgres(backend: Backend) -> Backend:
    if backend.name != "postgres":
        pytest.skip("row-level security is PostgreSQL's")
    return backend


async def test_every_tenant_owned_table_has_row_level_security_forced_and_a_policy(
    postgres: Backend,
) -> None:
    assert {"namespaces", "config_entries", "users", "api_tokens", "audit_events"} <= set(TABLES)
    engine = make_engine(postgres.superuser_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text(
                    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                    "coalesce(array_agg(p.qual) FILTER (WHERE p.qual IS NOT NULL), '{}') "
                    "FROM pg_class c LEFT JOIN pg_policies p ON p.tablename = c.relname "
                    "AND p.schemaname = 'public' "
                    "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' "
                    "GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity"
                )
            )
            tables = {name: (enabled, forced, quals) for name, enabled, forced, *_, quals in found}
    finally:
        await engine.dispose()
    missing = []
    for table, column in TABLES.items():
        enabled, forced, quals = tables[table]
        guarded = [q for q in quals if column in q and "konfig.tenant_id" in q]
        if not (enabled and forced and guarded):
            missing.append(f"{table}: enabled={enabled} forced={forced} policies={quals}")
    assert missing == [], "tables without row-level security on their tenant: add a migration"


async def test_the_suite_serves_as_a_role_row_level_security_holds(postgres: Backend) -> None:
    tables = sorted(TABLES)
    for url, expected in (
        (postgres.url, []),
        (postgres.owner_url, ["owns"]),
        (postgres.superuser_url, ["superuser", "BYPASSRLS", "owns"]),  # a superuser is all three
    ):
        engine = make_engine(url, poolclass=NullPool)
        try:
            problems = await role_problems(engine, tables)
        finally:
            await engine.dispose()
        assert len(problems) == len(expected), problems
        for problem, word in zip(problems, expected, strict=True):
            assert word in problem


async def seed(client: httpx.AsyncClient, name: str) -> tuple[Account, str]:
    """A tenant with a row in every tenant-owned table; the id of its namespace."""
    account = await register(client, name)  # tenants, users, auth_sessions, audit_events
    namespace = await make_namespace(client, account, f"{name}/production")
    await set_entry(client, account, namespace, "db_host", f"{name}.internal")  # entries, history
    robot = await service_account(client, account, f"{name}-deployer")
    await make_token(client, account, read("**"), service_account_id=robot, name=f"{name}-token")
    return account, namespace


async def test_the_app_role_sees_and_touches_no_other_tenants_rows_in_sql_without_a_filter(
    postgres: Backend, client: httpx.AsyncClient
) -> None:
    a, _ = await seed(client, "acme")
    b, _ = await seed(client, "globex")
    seen: dict[str, tuple[int, int, int, int]] = {}
    for url in (postgres.url, postgres.superuser_url):
        engine = make_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                for table, column in TABLES.items():
                    transaction = await connection.begin()
                    await connection.execute(
                        text("SELECT set_config('konfig.tenant_id', :t, true)"), {"t": b.tenant_id}
                    )
                    counts = [
                        (await connection.execute(text(sql), {"t": tenant})).rowcount
                        if sql.startswith("DELETE")
                        else await connection.scalar(text(sql), {"t": tenant})
                        for sql, tenant in (
                            (f"SELECT count(*) FROM {table}", None),
                            (f"SELECT count(*) FROM {table} WHERE {column} = :t", a.tenant_id),
                            (f"SELECT count(*) FROM {table} WHERE {column} = :t", b.tenant_id),
                            (f"DELETE FROM {table} WHERE {column} = :t", a.tenant_id),
                        )
                    ]
                    await transaction.rollback()
                    seen[f"{table} as {'app' if url == postgres.url else 'superuser'}"] = (
                        int(counts[0] or 0),
                        int(counts[1] or 0),
                        int(counts[2] or 0),
                        int(counts[3] or 0),
                    )
        finally:
            await engine.dispose()
    for table in TABLES:
        everything, theirs, ours, deleted = seen[f"{table} as superuser"]
        assert theirs > 0 and ours > 0 and deleted == theirs, (table, seen)  # rows to hide
        everything, theirs, ours, deleted = seen[f"{table} as app"]
        assert (theirs, deleted) == (0, 0), (table, seen[f"{table} as app"])
        assert everything == ours > 0, (table, seen[f"{table} as app"])


async def test_the_app_role_cannot_write_a_row_for_another_tenant(
    postgres: Backend, client: httpx.AsyncClient
) -> None:
    a, _ = await seed(client, "acme")
    b, _ = await seed(client, "globex")
    engine = make_engine(postgres.url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.begin()
            await connection.execute(
                text("SELECT set_config('konfig.tenant_id', :t, true)"), {"t": b.tenant_id}
            )
            with pytest.raises(Exception, match="row-level security"):
                await connection.execute(
                    text(
                        "INSERT INTO audit_events (id, tenant_id, created_at, actor, action, "
                        "target_type, target, summary, request_id, client) VALUES "
                        "(:id, :t, now(), 'x', 'planted', 'x', 'x', '{}', 'x', 'x')"
                    ),
                    {"id": uuid.uuid4(), "t": a.tenant_id},
                )
            await connection.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
def sabotaged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The application's own tenant filters, gone: every ``<table>.tenant_id = <value>`` that
    a query builds compiles to ``true`` (as if each repository forgot it). Statements compiled
    before are cached per engine: only apps started after this see the sabotage."""
    original = PGCompiler.visit_binary

    def visit_binary(self: PGCompiler, binary: BinaryExpression[Any], **kw: Any) -> str:
        if (
            binary.operator is operators.eq
            and isinstance(binary.left, Column)
            and binary.left.name == "tenant_id"
            and isinstance(binary.right, BindParameter)
        ):
            return "true"
        return original(self, binary, **kw)

    monkeypatch.setattr(PGCompiler, "visit_binary", visit_binary)


# What tenant B asks for: lists that must hold none of A's rows, and A's objects by id or name
# (which must be 404).
LISTED = {
    "namespaces": "/namespaces",
    "users": "/users",
    "audit_events": "/audit?limit=200",
    "service_accounts": "/service-accounts",
    "api_tokens": "/tokens",
}
BY_ID = {
    "namespaces (by id)": "/namespaces/{ns}",
    "config_entries": "/namespaces/{ns}/configs",
    "revisions": "/namespaces/{ns}/revisions",
    "entry_versions": "/namespaces/{ns}/configs/db_host/history",
    "resolved read": "/config/acme/production",
}


async def what_b_sees_of_a(
    url: str, data_dir: Path, b: Account, a: Account, a_namespace: str
) -> dict[str, str]:
    """Each place where B's requests showed A's rows (empty: none did)."""
    app = create_app(make_settings(url, data_dir))
    leaks: dict[str, str] = {}
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://konfig.test") as http:

            async def get(path: str) -> httpx.Response:
                return await http.get(f"/api/v1{path}", headers=b.headers)

            for table, path in LISTED.items():
                answer = await get(path)
                if answer.status_code != 200 or "acme" in answer.text or a.tenant_id in answer.text:
                    leaks[table] = f"{answer.status_code} {answer.text[:200]}"
            for table, path in BY_ID.items():
                answer = await get(path.format(ns=a_namespace))
                if answer.status_code != 404 or "acme.internal" in answer.text:
                    leaks[table] = f"{answer.status_code} {answer.text[:200]}"
    return leaks


@pytest.fixture
async def two_tenants(client: httpx.AsyncClient) -> tuple[Account, str, Account]:
    a, namespace = await seed(client, "acme")
    b, _ = await seed(client, "globex")
    return a, namespace, b


async def test_with_the_apps_tenant_filter_sabotaged_tenant_b_still_sees_nothing_of_a(
    postgres: Backend,
    two_tenants: tuple[Account, str, Account],
    sabotaged: None,
    tmp_path: Path,
) -> None:
    a, namespace, b = two_tenants
    # The control: as a role row-level security does not hold, the sabotage leaks A's rows.
    leaked = await what_b_sees_of_a(postgres.superuser_url, tmp_path / "su", b, a, namespace)
    assert set(leaked) == {*LISTED, *BY_ID}, leaked
    # As the app role, the database's policies stop every one of them.
    assert await what_b_sees_of_a(postgres.url, tmp_path / "app", b, a, namespace) == {}


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


async def rls_tables(url: str) -> dict[str, tuple[bool, bool, int]]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text(
                    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                    "(SELECT count(*) FROM pg_policies p WHERE p.tablename = c.relname) "
                    "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
                    "AND c.relname = ANY(:tables)"
                ),
                {"tables": list(TABLES)},
            )
            return {
                name: (enabled, forced, int(policies)) for name, enabled, forced, policies in found
            }
    finally:
        await engine.dispose()


async def test_the_migration_goes_down_and_up_again() -> None:
    from alembic import command

    from konfig.db.migrate import alembic_config, upgrade
    from tests.conftest import create_pg_database, drop_pg_database

    plain = await create_pg_database()
    url = plain.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await upgrade(url)
        assert set((await rls_tables(url)).values()) == {(True, True, 1)}

        def downgrade(connection: Any) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")

        engine = make_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(downgrade)
                await connection.commit()
        finally:
            await engine.dispose()
        assert set((await rls_tables(url)).values()) == {(False, False, 0)}
        await upgrade(url)
        assert set((await rls_tables(url)).values()) == {(True, True, 1)}
    finally:
        await drop_pg_database(plain)


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
    ("konfig.security.rotation", "key rotation: every tenant's values"),
    ("konfig.tokens.cache", "api token: found by its hash"),
    ("konfig.tokens.cache", "api tokens: last use, of every tenant"),
    ("konfig.users.service", "users: an email is unique across tenants"),
    ("konfig.users.service", "a user of any tenant"),
    ("konfig.users.service", "the users of every tenant"),
    ("konfig.users.service", "change a user of any tenant"),
    ("konfig.users.service", "remove a user of any tenant"),
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
    import asyncio

    from tests.test_group_commit import held, queued, taken_up

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
