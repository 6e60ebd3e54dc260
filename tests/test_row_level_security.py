"""PostgreSQL row-level security: the second wall between tenants (migration 0006).

The suite's PostgreSQL backend serves as an app role that owns no table and has no BYPASSRLS
(tests/conftest.py), so every PostgreSQL test runs under the policies. Here: every tenant-owned
table has them; the app role cannot see or touch another tenant's rows even in SQL that forgets
the tenant; and with the application's own tenant filters sabotaged, a request of tenant B
still gets none of tenant A's rows (while a role that skips row-level security gets them: the
sabotage is real).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
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
from konfig.db.roles import role_problems, tenant_owned
from konfig.models import metadata
from konfig.settings import Settings
from tests.conftest import (
    Account,
    Backend,
    make_settings,
    only_postgres,
    register,
)
from tests.support.changes import done, protect
from tests.support.oidc import OidcProvider, start_provider
from tests.support.readpath import (
    bearer,
    make_namespace,
    make_token,
    put_entry,
    read,
    service_account,
    set_entry,
)
from tests.support.sso import CALLBACK, configure, start
from tests.support.webhooks import receiving, subscribe

TABLES = tenant_owned(metadata)
FLAG = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    """Analytics written at once, so that analytics_flag_evaluations has rows to hide; the
    webhooks worker runs only when a test says (``webhook_rows``): the outbox keeps the events
    the seed's changes wrote."""
    return make_settings(
        backend.url,
        tmp_path,
        analytics_flush_seconds=0.05,
        webhooks_enabled=False,
        webhook_allow_http=True,
        webhook_allowed_networks=["127.0.0.0/8"],
    )


@pytest.fixture
def postgres(backend: Backend) -> Backend:
    assert backend.name == "postgres", "mark the test only_postgres"
    return backend


@only_postgres
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


@only_postgres
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


async def seed(
    client: httpx.AsyncClient, name: str, provider: OidcProvider | None = None
) -> tuple[Account, str]:
    """A tenant with a row in every tenant-owned table (the SSO ones given a provider); the id
    of its namespace."""
    account = await register(client, name)  # tenants, users, auth_sessions, audit_events
    namespace = await make_namespace(client, account, f"{name}/production")
    await set_entry(client, account, namespace, "db_host", f"{name}.internal")  # entries, history
    robot = await service_account(client, account, f"{name}-deployer")
    token = await make_token(
        client, account, read("**"), service_account_id=robot, name=f"{name}-token"
    )
    await set_entry(client, account, namespace, "beta", FLAG, value_type="flag")
    evaluated = await client.post(  # analytics_* (flag evaluations among them), once flushed
        "/ofrep/v1/evaluate/flags/beta",
        headers={**bearer(token["token"]), "X-Konfig-Namespace": f"{name}/production"},
        json={"context": {"targetingKey": "u"}},
    )
    assert evaluated.status_code == 200, evaluated.text
    grouped = await client.post(
        "/api/v1/groups", headers=account.headers, json={"name": f"{name}-team"}
    )
    assert grouped.status_code == 201, grouped.text  # groups
    guarded = await make_namespace(client, account, f"{name}/guarded")
    await protect(client, account, f"{name}/guarded")  # protection_policies
    proposal = await put_entry(client, account.headers, guarded, "limit", "1")
    assert proposal.status_code == 202, proposal.text  # change_requests
    await done(client, account, proposal.json()["id"], "submit")  # change_request_events
    if provider is not None:
        await configure(client, account, provider)  # sso_configs
        await start(client, name)  # sso_flows
    return account, namespace


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    started = start_provider([CALLBACK], {})
    try:
        yield started
    finally:
        started.stop()


async def webhook_rows(app: Any, client: httpx.AsyncClient, accounts: list[Account]) -> None:
    """For each tenant a webhook, a delivery and its attempt (the worker runs here on demand),
    and an event left waiting in the outbox."""
    worker = app.state.webhooks
    await worker.fan_out()  # the seeds' events, to no one: a delivery waits for older events
    with receiving() as receiver:
        for account in accounts:
            hook = await subscribe(client, account, receiver.url)
            ping = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=account.headers)
            assert ping.status_code == 202, ping.text
        assert await worker.dispatch() == len(accounts)
        await worker.settle()
        await receiver.wait_for(len(accounts))
    for account in accounts:
        await make_namespace(client, account, "waiting")  # its namespace.created event stays


async def counts_written(superuser_url: str, tenants: int) -> None:
    """Wait until the evaluation counts and usage analytics of ``tenants`` tenants are in the
    database."""
    engine = make_engine(superuser_url, poolclass=NullPool)
    tables = (
        "analytics_flag_evaluations",
        "analytics_clients",
        "analytics_traffic",
        "analytics_key_reads",
    )
    try:
        for _ in range(500):
            async with engine.connect() as connection:
                found = [
                    await connection.scalar(text(f"SELECT count(DISTINCT tenant_id) FROM {table}"))
                    for table in tables
                ]
            if found == [tenants] * len(tables):
                return
            await asyncio.sleep(0.02)
    finally:
        await engine.dispose()
    raise AssertionError("the evaluation counts were never written")


@only_postgres
async def test_the_app_role_sees_and_touches_no_other_tenants_rows_in_sql_without_a_filter(
    postgres: Backend, client: httpx.AsyncClient, app: Any, provider: OidcProvider
) -> None:
    a, _ = await seed(client, "acme", provider)
    b, _ = await seed(client, "globex", provider)
    await counts_written(postgres.superuser_url, 2)
    await webhook_rows(app, client, [a, b])
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


@only_postgres
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
    original: Callable[..., str] = PGCompiler.visit_binary

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
    "webhook_endpoints": "/webhooks",
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
    await subscribe(client, a, "http://127.0.0.1:9/acme")
    return a, namespace, b


@only_postgres
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


LATER_MIGRATION = '''
"""a data migration after row-level security: it must see every tenant's rows"""
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE namespaces SET description = 'migrated'")


def downgrade() -> None:
    pass
'''


@only_postgres
async def test_a_later_data_migration_sees_every_tenants_rows(
    postgres: Backend, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Migrations run as the owner, whom FORCE holds to the policies too: the migration
    environment lets them act across tenants, or a data migration would change nothing."""
    import shutil

    from alembic import command

    from konfig.db.migrate import MIGRATIONS, alembic_config, head_revision

    await seed(client, "acme")
    await seed(client, "globex")
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    later = LATER_MIGRATION.replace("{head}", head_revision() or "")
    (scripts / "versions" / "9999_later.py").write_text(later)

    def migrate(connection: Any) -> None:
        config = alembic_config()
        config.set_main_option("script_location", str(scripts))
        config.attributes["connection"] = connection
        command.upgrade(config, "9999")
        command.downgrade(config, head_revision() or "")

    owner = make_engine(postgres.owner_url, poolclass=NullPool)
    superuser = make_engine(postgres.superuser_url, poolclass=NullPool)
    try:
        async with owner.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
        async with superuser.connect() as connection:
            described = await connection.scalars(text("SELECT description FROM namespaces"))
            assert set(described) == {"migrated"}
    finally:
        await owner.dispose()
        await superuser.dispose()
