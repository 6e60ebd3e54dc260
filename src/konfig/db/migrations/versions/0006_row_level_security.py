"""row-level security on every tenant-owned table (PostgreSQL only)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:30:00

Each table gets ENABLE and FORCE ROW LEVEL SECURITY (FORCE: the owner is held to it too) and
one policy, ``tenant_isolation``, for reads and writes alike: a row is visible, and may be
written, when its tenant is one the transaction is bound to (``konfig.tenant_id``, set with
``SET LOCAL`` semantics by ``konfig.db.session.bind_tenant``; the group commit binds the few
tenants of its batch, comma-separated), or when one of the named cross-tenant code paths has
said so (``konfig.across_tenants``, see ``konfig.db.session.across_tenants``). Both settings
are read once per statement (an ``InitPlan``), not once per row. SQLite and MariaDB have no
row-level security: there this migration does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table holding a tenant's rows, with the column naming the tenant. A new tenant-owned
# table needs its own line in a new migration: tests/test_row_level_security.py fails until
# it has one.
TABLES = {
    "tenants": "id",
    "users": "tenant_id",
    "auth_sessions": "tenant_id",
    "namespaces": "tenant_id",
    "config_entries": "tenant_id",
    "revisions": "tenant_id",
    "entry_versions": "tenant_id",
    "service_accounts": "tenant_id",
    "api_tokens": "tenant_id",
    "audit_events": "tenant_id",
}

# A scalar subquery (cast, so that ANY takes it for an array, not for a set of rows): the
# planner runs it once per statement.
BOUND = (
    "(SELECT string_to_array(nullif(current_setting('konfig.tenant_id', true), ''), ','))::uuid[]"
)
ACROSS = "(SELECT coalesce(current_setting('konfig.across_tenants', true), '') <> '')"


def policy(column: str) -> str:
    return f"{column} = ANY ({BOUND}) OR {ACROSS}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in TABLES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({policy(column)}) WITH CHECK ({policy(column)})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
